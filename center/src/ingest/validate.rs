//! Validating an alarm or an event's update: well-formed, on its own agent's topic, signed with
//! the key registered for that agent, its snapshot the one the agent signed for. Checking signatures is the bulk
//! of ingest's CPU, so a large batch is checked on several threads.

use rumqttc::Publish;
use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD,
    sha256,
};
use xueliang_proto::topics::{Topics, is_valid_id};
use xueliang_proto::{Alarm, EventUpdate, Message, decode_limited};

use crate::fleet::AgentKeys;

/// A signed message from an agent, as [`verified`] checks it.
trait Signed: Message + Default {
    /// Its topic kind (`{prefix}/{agent}/{kind}`).
    const KIND: &'static str;
    /// The field of its signature and the field its signature leaves out (the picture).
    const FIELDS: (u32, u32);
    /// The agent it names, its id, its picture and the picture's signed hash.
    fn parts(&self) -> (&str, &str, &[u8], &[u8]);
}

impl Signed for Alarm {
    const KIND: &'static str = "alarm";
    const FIELDS: (u32, u32) = (ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD);
    fn parts(&self) -> (&str, &str, &[u8], &[u8]) {
        (&self.agent_id, &self.id, &self.snapshot_jpeg, &self.snapshot_sha256)
    }
}

impl Signed for EventUpdate {
    const KIND: &'static str = "event";
    const FIELDS: (u32, u32) = (UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD);
    fn parts(&self) -> (&str, &str, &[u8], &[u8]) {
        (&self.agent_id, &self.id, &self.snapshot_jpeg, &self.snapshot_sha256)
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
    let (signature, picture) = M::FIELDS;
    key.verify(payload, signature, &[picture], agent).map_err(|e| e.to_string())?;
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

    #[test]
    fn alarms_must_be_signed_by_their_own_agent_and_come_on_its_topic() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = SigningKey::load_or_create(&dir.path().join("v1.key")).unwrap();
        let v2 = SigningKey::load_or_create(&dir.path().join("v2.key")).unwrap();
        let keys_file = dir.path().join("agent-keys.toml");
        std::fs::write(
            &keys_file,
            format!("[agents]\nv1 = \"{}\"\nv2 = \"{}\"\n", v1.public_key(), v2.public_key()),
        )
        .unwrap();
        let keys = AgentKeys::open(&keys_file).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let v1 = SigningKey::load_or_create(&dir.path().join("v1.key")).unwrap();
        let v2 = SigningKey::load_or_create(&dir.path().join("v2.key")).unwrap();
        let keys_file = dir.path().join("agent-keys.toml");
        std::fs::write(&keys_file, format!("[agents]\nv1 = \"{}\"\n", v1.public_key())).unwrap();
        let keys = AgentKeys::open(&keys_file).unwrap();
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
}
