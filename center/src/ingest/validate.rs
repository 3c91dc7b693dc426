//! Validating an alarm, an event's update or a chunk of an event's clip: well-formed, on its own
//! agent's topic, signed with the key registered for that agent, its snapshot the one the agent
//! signed for, a chunk's bytes within its clip. Checking signatures is the bulk of ingest's CPU,
//! so a large batch of alarms is checked on several threads.

use rumqttc::Publish;
use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, CLIP_CHUNK_FIELDS, CLIP_SIGNATURE_FIELD,
    UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD, sha256, signed_part,
};
use xueliang_proto::topics::{Topics, is_valid_id};
use xueliang_proto::{Alarm, ClipChunk, EventUpdate, Message, decode_limited};

use crate::fleet::AgentKeys;

/// A signed message from an agent, as [`verified`] checks it.
trait Signed: Message + Default {
    /// Its topic kind (`{prefix}/{agent}/{kind}`).
    const KIND: &'static str;
    /// The field of its signature.
    const SIGNATURE: u32;
    /// The fields its signature leaves out (a picture; a chunk's offset and data).
    const UNSIGNED: &'static [u32];
    /// The agent it names, its id, its picture and the picture's signed hash.
    fn parts(&self) -> (&str, &str, &[u8], &[u8]);
}

impl Signed for Alarm {
    const KIND: &'static str = "alarm";
    const SIGNATURE: u32 = ALARM_SIGNATURE_FIELD;
    const UNSIGNED: &'static [u32] = &[ALARM_SNAPSHOT_FIELD];
    fn parts(&self) -> (&str, &str, &[u8], &[u8]) {
        (&self.agent_id, &self.id, &self.snapshot_jpeg, &self.snapshot_sha256)
    }
}

impl Signed for EventUpdate {
    const KIND: &'static str = "event";
    const SIGNATURE: u32 = UPDATE_SIGNATURE_FIELD;
    const UNSIGNED: &'static [u32] = &[UPDATE_SNAPSHOT_FIELD];
    fn parts(&self) -> (&str, &str, &[u8], &[u8]) {
        (&self.agent_id, &self.id, &self.snapshot_jpeg, &self.snapshot_sha256)
    }
}

impl Signed for ClipChunk {
    const KIND: &'static str = "clip";
    const SIGNATURE: u32 = CLIP_SIGNATURE_FIELD;
    const UNSIGNED: &'static [u32] = &CLIP_CHUNK_FIELDS;
    // No picture: the clip's hash is checked once all of it is there.
    fn parts(&self) -> (&str, &str, &[u8], &[u8]) {
        (&self.agent_id, &self.clip_id, &[], &[])
    }
}

/// The message of kind `M` in `payload`, or why it is refused.
fn verified<M: Signed>(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
) -> Result<M, String> {
    let what = M::KIND;
    let agent = topics
        .agent_of(topic, what)
        .ok_or_else(|| format!("topic {topic} is not an agent {what} topic"))?;
    xueliang_proto::check_size(payload).map_err(|e| e.to_string())?;
    let key = keys.get(agent).ok_or_else(|| {
        format!(
            "no key registered for agent {agent:?}: add its line (`xl-agent key` on the box prints it) to {}",
            keys.path().display()
        )
    })?;
    key.verify(payload, M::SIGNATURE, M::UNSIGNED, agent).map_err(|e| e.to_string())?;
    let m: M = decode_limited(payload).map_err(|e| e.to_string())?;
    let (named, id, jpeg, hash) = m.parts();
    if !jpeg.is_empty() && sha256(jpeg) != hash {
        return Err("the snapshot does not match the hash the agent signed".into());
    }
    if named != agent {
        return Err(format!("{what} names agent {named:?} but came on {agent:?}'s topic"));
    }
    if !is_valid_id(id) {
        return Err(format!("{what} id {id:?} is not a valid id"));
    }
    Ok(m)
}

/// The alarm in `payload`, or why it is refused.
pub(super) fn validate(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
) -> Result<Alarm, String> {
    verified(topics, keys, topic, payload)
}

/// The update of an event in `payload`, or why it is refused.
pub(super) fn validate_update(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
) -> Result<EventUpdate, String> {
    let u: EventUpdate = verified(topics, keys, topic, payload)?;
    if !is_valid_id(&u.event_id) {
        return Err(format!("update names event {:?}, not a valid id", u.event_id));
    }
    Ok(u)
}

/// Why a clip chunk is refused, and the chunk (`{clip_id}@{offset}`) when its agent signed it:
/// that agent is told, so it gives the clip up instead of sending it for ever.
pub(super) type ClipRefusal = (String, Option<String>);

/// The chunk of an event's clip in `payload` and the chunk as signed (encoded without its offset
/// and data, which the center keeps as the clip's proof of origin), or why it is refused. A clip
/// is at most `max_bytes`.
pub(super) fn validate_clip(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
    max_bytes: u64,
) -> Result<(ClipChunk, Vec<u8>), ClipRefusal> {
    let c: ClipChunk = verified(topics, keys, topic, payload).map_err(|reason| (reason, None))?;
    let chunk_id = xueliang_proto::clip_chunk_id(&c.clip_id, c.offset);
    check_clip(&c, max_bytes).map_err(|reason| (reason, Some(chunk_id)))?;
    let signed = signed_part(payload, &CLIP_CHUNK_FIELDS).map_err(|e| (e.to_string(), None))?;
    Ok((c, signed))
}

/// Whether a chunk its agent signed describes a clip this center takes, and lies within it.
fn check_clip(c: &ClipChunk, max_bytes: u64) -> Result<(), String> {
    let id = &c.clip_id;
    // The agent's id names a directory of its partial clips.
    if !is_valid_id(&c.agent_id) {
        return Err(format!("clip {id} names agent {:?}, not a valid id", c.agent_id));
    }
    if !is_valid_id(&c.event_id) {
        return Err(format!("clip {id} names event {:?}, not a valid id", c.event_id));
    }
    if c.sha256.len() != 32 {
        return Err(format!("clip {id}: its SHA-256 is {} bytes, not 32", c.sha256.len()));
    }
    if c.size == 0 || c.size > max_bytes {
        return Err(format!(
            "clip {id} of {} bytes: this center takes clips of 1 to {max_bytes} bytes",
            c.size
        ));
    }
    let end = c.offset.checked_add(c.data.len() as u64).filter(|&end| end <= c.size);
    if c.data.is_empty() || end.is_none() {
        return Err(format!(
            "clip {id}: a chunk of {} bytes at {} is not within its {} bytes",
            c.data.len(),
            c.offset,
            c.size
        ));
    }
    Ok(())
}

/// [`validate`] for every publish on an alarm topic, on several threads: checking signatures
/// is the bulk of ingest's CPU. The others are `None`.
pub(super) fn validate_all(
    topics: &Topics,
    keys: &AgentKeys,
    batch: &[Publish],
) -> Vec<Option<Result<Alarm, String>>> {
    let check = |p: &Publish| {
        topics.agent_of(&p.topic, "alarm").map(|_| validate(topics, keys, &p.topic, &p.payload))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if batch.len() < 64 || threads == 1 {
        return batch.iter().map(check).collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = batch
            .chunks(chunk)
            .map(|c| (c.len(), s.spawn(move || c.iter().map(check).collect::<Vec<_>>())))
            .collect();
        // A panicking check would be a bug; its publishes are then validated again in the loop.
        parts.into_iter().flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![None; n])).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueliang_proto::signing::SigningKey;

    /// Keys of agents `v1` and `v2` (in a directory kept alive by the caller), and a registry
    /// holding those named in `registered`.
    fn agents(registered: &[&str]) -> (tempfile::TempDir, SigningKey, SigningKey, AgentKeys) {
        let dir = tempfile::tempdir().unwrap();
        let v1 = SigningKey::load_or_create(&dir.path().join("v1.key")).unwrap();
        let v2 = SigningKey::load_or_create(&dir.path().join("v2.key")).unwrap();
        let keys_file = dir.path().join("agent-keys.toml");
        let lines: String = [("v1", &v1), ("v2", &v2)]
            .iter()
            .filter(|(id, _)| registered.contains(id))
            .map(|(id, key)| format!("{id} = \"{}\"\n", key.public_key()))
            .collect();
        std::fs::write(&keys_file, format!("[agents]\n{lines}")).unwrap();
        let keys = AgentKeys::open(&keys_file).unwrap();
        (dir, v1, v2, keys)
    }

    #[test]
    fn alarms_must_be_signed_by_their_own_agent_and_come_on_its_topic() {
        let (_dir, v1, v2, keys) = agents(&["v1", "v2"]);
        let t = Topics::default();
        let seal = |key: &SigningKey, a: &Alarm| {
            key.sign(a.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD]).unwrap()
        };
        let a = Alarm { id: "0199-abc".into(), agent_id: "v1".into(), ..Default::default() };

        assert!(validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &a)).is_ok());
        // v2 speaking for v1, on v1's topic or on its own.
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v2, &a)).unwrap_err();
        assert_eq!(err, "the signature does not verify against the key registered for \"v1\"");
        let err = validate(&t, &keys, "xl/v1/v2/alarm", &seal(&v2, &a)).unwrap_err();
        assert!(err.contains("came on \"v2\"'s topic"), "{err}");
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &a.encode_to_vec()).unwrap_err();
        assert_eq!(err, "the message is not signed");
        let err = validate(&t, &keys, "xl/v1/v3/alarm", &seal(&v1, &a)).unwrap_err();
        assert!(err.starts_with("no key registered for agent \"v3\": add its line"), "{err}");
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", b"\xff\xff").unwrap_err().contains("malformed")
        );
        let no_id = Alarm { agent_id: "v1".into(), ..Default::default() };
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &no_id))
                .unwrap_err()
                .contains("not a valid id")
        );
        // A snapshot swapped on the way: the signed hash does not match.
        let mut with_picture = a.clone();
        with_picture.snapshot_sha256 = sha256(b"the real picture").into();
        let mut swapped = Alarm::decode(seal(&v1, &with_picture).as_slice()).unwrap();
        swapped.snapshot_jpeg = b"another picture".to_vec().into();
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &swapped.encode_to_vec()).unwrap_err();
        assert_eq!(err, "the snapshot does not match the hash the agent signed");
    }

    #[test]
    fn updates_are_checked_like_alarms_on_the_event_topic() {
        let (_dir, v1, v2, keys) = agents(&["v1"]);
        let t = Topics::default();
        let seal = |key: &SigningKey, u: &EventUpdate| {
            key.sign(u.encode_to_vec(), UPDATE_SIGNATURE_FIELD, &[UPDATE_SNAPSHOT_FIELD]).unwrap()
        };
        let u = EventUpdate {
            id: "0199-u1".into(),
            agent_id: "v1".into(),
            event_id: "0199-e".into(),
            seq: 1,
            snapshot_sha256: sha256(b"better view").into(),
            snapshot_jpeg: b"better view".to_vec().into(),
            ..Default::default()
        };
        let taken = validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v1, &u)).unwrap();
        assert_eq!((taken.event_id.as_str(), taken.seq), ("0199-e", 1));
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v2, &u)).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        let err = validate_update(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &u)).unwrap_err();
        assert!(err.contains("not an agent event topic"), "{err}");
        let mut swapped = EventUpdate::decode(seal(&v1, &u).as_slice()).unwrap();
        swapped.snapshot_jpeg = b"another picture".to_vec().into();
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &swapped.encode_to_vec());
        assert_eq!(err.unwrap_err(), "the snapshot does not match the hash the agent signed");
        let nameless = EventUpdate { event_id: "../x".into(), ..u };
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v1, &nameless)).unwrap_err();
        assert!(err.contains("not a valid id"), "{err}");
    }

    #[test]
    fn clip_chunks_are_checked_like_alarms_and_must_lie_within_their_clip() {
        let (_dir, v1, v2, keys) = agents(&["v1"]);
        let t = Topics::default();
        let seal = |key: &SigningKey, c: &ClipChunk| {
            key.sign(c.encode_to_vec(), CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS).unwrap()
        };
        let chunk = ClipChunk {
            clip_id: "0199-k".into(),
            agent_id: "v1".into(),
            event_id: "0199-e".into(),
            size: 100,
            sha256: sha256(b"the clip").into(),
            offset: 90,
            data: vec![1; 10].into(),
            ..Default::default()
        };
        let check = |payload: &[u8]| validate_clip(&t, &keys, "xl/v1/v1/clip", payload, 1000);
        let sealed = seal(&v1, &chunk);
        let (taken, signed) = check(&sealed).unwrap();
        assert_eq!((taken.offset, taken.data.len()), (90, 10));
        // What the center keeps proves the clip's description on its own.
        assert!(!signed.windows(10).any(|w| w == [1; 10]), "no data in it");
        let public: xueliang_proto::signing::VerifyingKey = v1.public_key().parse().unwrap();
        public.verify(&signed, CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS, "v1").unwrap();
        // Offset and data lie outside the signature: one signature serves every chunk.
        let mut moved = ClipChunk::decode(sealed.as_slice()).unwrap();
        moved.offset = 0;
        assert!(check(&moved.encode_to_vec()).is_ok());
        let mut resized = ClipChunk::decode(sealed.as_slice()).unwrap();
        resized.size = 99;
        // Not signed by the agent: nobody to tell.
        let (err, named) = check(&resized.encode_to_vec()).unwrap_err();
        assert!(err.contains("does not verify") && named.is_none(), "{err}");
        assert!(check(&seal(&v2, &chunk)).unwrap_err().0.contains("does not verify"));
        let (err, _) = validate_clip(&t, &keys, "xl/v1/v1/event", &sealed, 1000).unwrap_err();
        assert!(err.contains("not an agent clip topic"), "{err}");
        for (bad, reason) in [
            (
                ClipChunk { event_id: "../e".into(), ..chunk.clone() },
                "names event \"../e\", not a valid id",
            ),
            (
                ClipChunk { sha256: vec![0; 31].into(), ..chunk.clone() },
                "its SHA-256 is 31 bytes, not 32",
            ),
            (
                ClipChunk { size: 1001, ..chunk.clone() },
                "this center takes clips of 1 to 1000 bytes",
            ),
            (
                ClipChunk { offset: 91, ..chunk.clone() },
                "a chunk of 10 bytes at 91 is not within its 100 bytes",
            ),
            (ClipChunk { offset: u64::MAX, ..chunk.clone() }, "is not within"),
            (ClipChunk { data: Default::default(), ..chunk.clone() }, "a chunk of 0 bytes"),
        ] {
            // Signed by the agent: the chunk is named, so the agent gives its clip up.
            let (err, named) = check(&seal(&v1, &bad)).unwrap_err();
            assert!(err.contains(reason), "{err}");
            let id = xueliang_proto::clip_chunk_id(&bad.clip_id, bad.offset);
            assert_eq!(named, Some(id));
        }
    }
}
