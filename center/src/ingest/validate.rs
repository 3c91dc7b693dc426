//! Validating an alarm, an event's update or a chunk of an event's clip: well-formed, on its own
//! agent's topic, signed with the key registered for that agent, its snapshot the one the agent
//! signed for, a chunk's bytes within its clip; and what it says within bounds (finite scores
//! and boxes inside the picture, few enough detections, short strings, a plausible event time),
//! since a signature proves who sent a message, not that it makes sense. Checking signatures is
//! the bulk of ingest's CPU, so a large batch of alarms is checked on several threads.

use rumqttc::Publish;
use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, CLIP_CHUNK_FIELDS, CLIP_SIGNATURE_FIELD,
    UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD, sha256, signed_part,
};
use xueliang_proto::topics::{Topics, is_valid_id};
use xueliang_proto::{Alarm, ClipChunk, Detection, EventUpdate, Message, decode_limited};

use crate::fleet::{AgentKeys, local_time};
use crate::store::{DAY_MS, MAX_EVENT_AGE_MS};

/// Detections one alarm or update may carry: far more objects than one picture holds for a duty
/// officer to use, and every list page reads every detection of every record it lists.
const MAX_DETECTIONS: usize = 256;
/// Bytes of a camera, rule or zone id, which lists, filters and indexes use.
const MAX_ID_BYTES: usize = 128;
/// Bytes of a class name, model id or version, or a clip's stream name.
const MAX_NAME_BYTES: usize = 128;
/// Pixels a side of the frame boxes refer to: more than any camera's (an 8K frame is 7680 wide).
const MAX_FRAME_SIDE: u32 = 16_384;
/// How far a box's normalized coordinate may lie outside 0..1: a detector's box may overhang
/// the picture's edge a little, which is rounding, not nonsense.
const BOX_TOLERANCE: f32 = 0.01;
/// How far an edge box's clock may be off the center's: beyond this its event times are refused
/// (`xl-agent doctor` already fails a clock more than 2 s off).
const MAX_CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;

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

/// The alarm in `payload`, or why it is refused, as received at `now_ms`.
pub(super) fn validate(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
    now_ms: i64,
) -> Result<Alarm, Refusal> {
    let a: Alarm = verified(topics, keys, topic, payload).map_err(|reason| (reason, None))?;
    check_alarm(&a, now_ms).map_err(|e| (format!("alarm {}: {e}", a.id), Some(a.id.clone())))?;
    Ok(a)
}

/// The update of an event in `payload`, or why it is refused, as received at `now_ms`.
pub(super) fn validate_update(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
    now_ms: i64,
) -> Result<EventUpdate, Refusal> {
    let u: EventUpdate = verified(topics, keys, topic, payload).map_err(|reason| (reason, None))?;
    if !is_valid_id(&u.event_id) {
        return Err((format!("update names event {:?}, not a valid id", u.event_id), None));
    }
    check_update(&u, now_ms).map_err(|e| (format!("update {}: {e}", u.id), Some(u.id.clone())))?;
    Ok(u)
}

/// Whether what a signed alarm says is within bounds at `now_ms`.
fn check_alarm(a: &Alarm, now_ms: i64) -> Result<(), String> {
    for (field, value) in
        [("camera_id", &a.camera_id), ("rule_id", &a.rule_id), ("zone_id", &a.zone_id)]
    {
        check_text(field, value, MAX_ID_BYTES)?;
    }
    for (field, value) in [("model_id", &a.model_id), ("model_version", &a.model_version)] {
        check_text(field, value, MAX_NAME_BYTES)?;
    }
    check_detections(&a.detections)?;
    check_frame(a.frame_width, a.frame_height)?;
    check_time("event time", a.event_time_ms, now_ms)
}

/// Whether what a signed update says is within bounds at `now_ms`; its times are checked where
/// set (an update that does not end has no end time).
fn check_update(u: &EventUpdate, now_ms: i64) -> Result<(), String> {
    check_detections(&u.detections)?;
    check_frame(u.frame_width, u.frame_height)?;
    for (field, t) in [("time", u.time_ms), ("end time", u.end_time_ms)] {
        if t != 0 {
            check_time(field, t, now_ms)?;
        }
    }
    Ok(())
}

/// Whether `value` of `field` is at most `max` bytes and free of control characters (the
/// indexes separate their parts with NUL).
fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} is {} bytes; at most {max} are taken", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} {value:?} holds a control character"));
    }
    Ok(())
}

/// Whether there are at most [`MAX_DETECTIONS`], each with a short class name, a score from 0
/// to 1 and a box within the picture (and [`BOX_TOLERANCE`]) that is not turned inside out.
/// NaN fails every comparison, so each check is written to hold only for a good number.
fn check_detections(detections: &[Detection]) -> Result<(), String> {
    if detections.len() > MAX_DETECTIONS {
        return Err(format!("{} detections; at most {MAX_DETECTIONS} are taken", detections.len()));
    }
    for (i, d) in detections.iter().enumerate() {
        check_text(&format!("detection {i}'s class name"), &d.class_name, MAX_NAME_BYTES)?;
        if !(0.0..=1.0).contains(&d.score) {
            return Err(format!("detection {i}'s score {} is not a number from 0 to 1", d.score));
        }
        let Some(b) = d.r#box else { continue };
        for (name, v) in [("x1", b.x1), ("y1", b.y1), ("x2", b.x2), ("y2", b.y2)] {
            if !(-BOX_TOLERANCE..=1.0 + BOX_TOLERANCE).contains(&v) {
                return Err(format!(
                    "detection {i}'s box {name} {v} lies outside the picture (its coordinates run from 0 to 1)"
                ));
            }
        }
        if b.x2 < b.x1 || b.y2 < b.y1 {
            return Err(format!(
                "detection {i}'s box ({}, {})-({}, {}) is turned inside out: x2 and y2 may not be below x1 and y1",
                b.x1, b.y1, b.x2, b.y2
            ));
        }
    }
    Ok(())
}

/// Whether a frame of `width` x `height` pixels (0: not given) is one a camera makes.
fn check_frame(width: u32, height: u32) -> Result<(), String> {
    if width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return Err(format!(
            "a frame of {width}x{height} pixels; at most {MAX_FRAME_SIDE} a side are taken"
        ));
    }
    Ok(())
}

/// Whether `field`, at `t_ms`, lies between what a box's outbox can still hold and the
/// center's clock at `now_ms`, give or take [`MAX_CLOCK_SKEW_MS`].
fn check_time(field: &str, t_ms: i64, now_ms: i64) -> Result<(), String> {
    let (skew_min, age_days) = (MAX_CLOCK_SKEW_MS / 60_000, MAX_EVENT_AGE_MS / DAY_MS);
    if t_ms < now_ms.saturating_sub(MAX_EVENT_AGE_MS + MAX_CLOCK_SKEW_MS) {
        return Err(format!(
            "{field} {} is more than {age_days} days and {skew_min} minutes before the center's clock ({}): older than a box keeps anything waiting",
            local_time(t_ms),
            local_time(now_ms)
        ));
    }
    if t_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(format!(
            "{field} {} is more than {skew_min} minutes after the center's clock ({}): check the box's clock (`xl-agent doctor`)",
            local_time(t_ms),
            local_time(now_ms)
        ));
    }
    Ok(())
}

/// Why a message is refused, and its id when its agent signed it (an alarm's or an update's
/// own id, a chunk's `{clip_id}@{offset}`): that agent is told in its receipt, so it gives the
/// message up instead of sending it for ever.
pub(super) type Refusal = (String, Option<String>);

/// The chunk of an event's clip in `payload` and the chunk as signed (encoded without its offset
/// and data, which the center keeps as the clip's proof of origin), or why it is refused. A clip
/// is at most `max_bytes`.
pub(super) fn validate_clip(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
    max_bytes: u64,
) -> Result<(ClipChunk, Vec<u8>), Refusal> {
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
    check_text("camera_id", &c.camera_id, MAX_ID_BYTES).map_err(|e| format!("clip {id}: {e}"))?;
    check_text("stream", &c.stream, MAX_NAME_BYTES).map_err(|e| format!("clip {id}: {e}"))?;
    check_frame(c.width, c.height).map_err(|e| format!("clip {id}: {e}"))?;
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

/// [`validate`] at `now_ms` for every publish on an alarm topic, on several threads: checking signatures
/// is the bulk of ingest's CPU. The others are `None`.
pub(super) fn validate_all(
    topics: &Topics,
    keys: &AgentKeys,
    batch: &[Publish],
    now_ms: i64,
) -> Vec<Option<Result<Alarm, Refusal>>> {
    let check = |p: &Publish| {
        topics
            .agent_of(&p.topic, "alarm")
            .map(|_| validate(topics, keys, &p.topic, &p.payload, now_ms))
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

    /// The center's clock in these tests: 2026-12-01 00:00 UTC.
    const NOW: i64 = 1_796_083_200_000;

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
        let a = Alarm {
            id: "0199-abc".into(),
            agent_id: "v1".into(),
            event_time_ms: NOW,
            ..Default::default()
        };

        assert!(validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &a), NOW).is_ok());
        // v2 speaking for v1, on v1's topic or on its own.
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v2, &a), NOW).unwrap_err().0;
        assert_eq!(err, "the signature does not verify against the key registered for \"v1\"");
        let named = validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v2, &a), NOW).unwrap_err().1;
        assert_eq!(named, None, "v1 did not sign it: nothing to name back");
        let err = validate(&t, &keys, "xl/v1/v2/alarm", &seal(&v2, &a), NOW).unwrap_err().0;
        assert!(err.contains("came on \"v2\"'s topic"), "{err}");
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &a.encode_to_vec(), NOW).unwrap_err().0;
        assert_eq!(err, "the message is not signed");
        let err = validate(&t, &keys, "xl/v1/v3/alarm", &seal(&v1, &a), NOW).unwrap_err().0;
        assert!(err.starts_with("no key registered for agent \"v3\": add its line"), "{err}");
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", b"\xff\xff", NOW)
                .unwrap_err()
                .0
                .contains("malformed")
        );
        let no_id = Alarm { agent_id: "v1".into(), ..Default::default() };
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &no_id), NOW)
                .unwrap_err()
                .0
                .contains("not a valid id")
        );
        // A snapshot swapped on the way: the signed hash does not match.
        let mut with_picture = a.clone();
        with_picture.snapshot_sha256 = sha256(b"the real picture").into();
        let mut swapped = Alarm::decode(seal(&v1, &with_picture).as_slice()).unwrap();
        swapped.snapshot_jpeg = b"another picture".to_vec().into();
        let err =
            validate(&t, &keys, "xl/v1/v1/alarm", &swapped.encode_to_vec(), NOW).unwrap_err().0;
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
        let taken = validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v1, &u), NOW).unwrap();
        assert_eq!((taken.event_id.as_str(), taken.seq), ("0199-e", 1));
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v2, &u), NOW).unwrap_err().0;
        assert!(err.contains("does not verify"), "{err}");
        let err = validate_update(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &u), NOW).unwrap_err().0;
        assert!(err.contains("not an agent event topic"), "{err}");
        let mut swapped = EventUpdate::decode(seal(&v1, &u).as_slice()).unwrap();
        swapped.snapshot_jpeg = b"another picture".to_vec().into();
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &swapped.encode_to_vec(), NOW);
        assert_eq!(err.unwrap_err().0, "the snapshot does not match the hash the agent signed");
        let nameless = EventUpdate { event_id: "../x".into(), ..u };
        let err =
            validate_update(&t, &keys, "xl/v1/v1/event", &seal(&v1, &nameless), NOW).unwrap_err().0;
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
            (
                ClipChunk { camera_id: "c".repeat(129), ..chunk.clone() },
                "camera_id is 129 bytes; at most 128 are taken",
            ),
            (ClipChunk { stream: "s".repeat(129), ..chunk.clone() }, "stream is 129 bytes"),
            (
                ClipChunk { width: 100_000, height: 576, ..chunk.clone() },
                "a frame of 100000x576 pixels; at most 16384 a side",
            ),
        ] {
            // Signed by the agent: the chunk is named, so the agent gives its clip up.
            let (err, named) = check(&seal(&v1, &bad)).unwrap_err();
            assert!(err.contains(reason), "{err}");
            let id = xueliang_proto::clip_chunk_id(&bad.clip_id, bad.offset);
            assert_eq!(named, Some(id));
        }
    }

    /// A detection of a person, well inside the picture.
    fn person() -> Detection {
        Detection {
            class_name: "person".into(),
            score: 0.9,
            r#box: Some(xueliang_proto::Box { x1: 0.2, y1: 0.3, x2: 0.4, y2: 0.9 }),
            ..Default::default()
        }
    }

    /// An alarm of one person, at the center's clock.
    fn good_alarm() -> Alarm {
        Alarm {
            id: "0199-ok".into(),
            agent_id: "v1".into(),
            camera_id: "gate".into(),
            rule_id: "gate-intrusion".into(),
            zone_id: "gate".into(),
            model_id: "nanodet".into(),
            model_version: "g-416".into(),
            event_time_ms: NOW,
            detections: vec![person()],
            frame_width: 768,
            frame_height: 576,
            ..Default::default()
        }
    }

    /// Why `a` is refused, or `ok`.
    fn verdict(a: &Alarm) -> String {
        check_alarm(a, NOW).err().unwrap_or_else(|| "ok".into())
    }

    #[test]
    fn scores_and_boxes_that_are_not_finite_or_lie_outside_the_picture_are_refused() {
        let with = |change: &dyn Fn(&mut Detection)| {
            let mut a = good_alarm();
            change(&mut a.detections[0]);
            verdict(&a)
        };
        let set_box = |x1, y1, x2, y2| {
            move |d: &mut Detection| {
                d.r#box = Some(xueliang_proto::Box { x1, y1, x2, y2 });
            }
        };
        assert_eq!(verdict(&good_alarm()), "ok");
        for (case, expected) in [
            (with(&|d| d.score = f32::NAN), "detection 0's score NaN is not a number from 0 to 1"),
            (with(&|d| d.score = 7.0), "detection 0's score 7 is not a number from 0 to 1"),
            (with(&|d| d.score = -0.1), "detection 0's score -0.1 is not a number from 0 to 1"),
            (with(&|d| d.score = f32::INFINITY), "detection 0's score inf is not a number"),
            (
                with(&set_box(f32::INFINITY, 0.0, 1.0, 1.0)),
                "detection 0's box x1 inf lies outside the picture (its coordinates run from 0 to 1)",
            ),
            (with(&set_box(0.0, f32::NEG_INFINITY, 1.0, 1.0)), "box y1 -inf lies outside"),
            (with(&set_box(0.0, 0.0, f32::NAN, 1.0)), "box x2 NaN lies outside"),
            (with(&set_box(0.0, 0.0, 1.0, 1.5)), "box y2 1.5 lies outside"),
            (with(&set_box(0.0, -0.02, 1.0, 1.0)), "box y1 -0.02 lies outside"),
            (
                with(&set_box(0.5, 0.1, 0.2, 0.9)),
                "detection 0's box (0.5, 0.1)-(0.2, 0.9) is turned inside out",
            ),
            (with(&set_box(0.1, 0.9, 0.2, 0.8)), "is turned inside out"),
        ] {
            assert!(case.contains(expected), "{case:?} should say {expected:?}");
        }
        // The edges, a box overhanging them by rounding, a dot and no box at all are fine.
        for fine in [
            with(&|d| d.score = 0.0),
            with(&|d| d.score = 1.0),
            with(&set_box(-0.01, -0.005, 1.01, 1.0)),
            with(&set_box(0.3, 0.3, 0.3, 0.3)),
            with(&|d| d.r#box = None),
        ] {
            assert_eq!(fine, "ok");
        }
        // The second detection is named by its place.
        let mut a = good_alarm();
        a.detections.push(Detection { score: f32::NAN, ..person() });
        assert!(verdict(&a).starts_with("detection 1's score NaN"), "{}", verdict(&a));
    }

    #[test]
    fn too_many_detections_over_long_strings_and_huge_frames_are_refused() {
        let mut a = good_alarm();
        a.detections = vec![person(); MAX_DETECTIONS];
        assert_eq!(verdict(&a), "ok");
        a.detections.push(person());
        assert_eq!(verdict(&a), "257 detections; at most 256 are taken");
        let (id, name) = ("x".repeat(MAX_ID_BYTES), "x".repeat(MAX_NAME_BYTES));
        let longer = |s: &str| format!("{s}y");
        let mut class = good_alarm();
        class.detections[0].class_name = longer(&name);
        for (a, expected) in [
            (
                Alarm { camera_id: longer(&id), ..good_alarm() },
                "camera_id is 129 bytes; at most 128 are taken",
            ),
            (Alarm { rule_id: longer(&id), ..good_alarm() }, "rule_id is 129 bytes"),
            (Alarm { zone_id: longer(&id), ..good_alarm() }, "zone_id is 129 bytes"),
            (Alarm { model_id: longer(&name), ..good_alarm() }, "model_id is 129 bytes"),
            (Alarm { model_version: longer(&name), ..good_alarm() }, "model_version is 129 bytes"),
            (class, "detection 0's class name is 129 bytes"),
            (
                Alarm { camera_id: "gate\0pond".into(), ..good_alarm() },
                "camera_id \"gate\\0pond\" holds a control character",
            ),
            (
                Alarm { frame_width: MAX_FRAME_SIDE + 1, ..good_alarm() },
                "a frame of 16385x576 pixels; at most 16384 a side are taken",
            ),
            (Alarm { frame_height: u32::MAX, ..good_alarm() }, "a frame of 768x4294967295 pixels"),
        ] {
            assert!(verdict(&a).starts_with(expected), "{} should say {expected:?}", verdict(&a));
        }
        let longest = Alarm {
            camera_id: id.clone(),
            rule_id: id.clone(),
            zone_id: id,
            model_id: name.clone(),
            model_version: name,
            frame_width: MAX_FRAME_SIDE,
            frame_height: MAX_FRAME_SIDE,
            ..good_alarm()
        };
        assert_eq!(verdict(&longest), "ok");
        let no_frame = Alarm { frame_width: 0, frame_height: 0, ..good_alarm() };
        assert_eq!(verdict(&no_frame), "ok", "a camera-level alarm may give no frame size");
    }

    #[test]
    fn event_times_must_lie_between_the_oldest_an_outbox_keeps_and_the_clock_skew() {
        let at = |t: i64| {
            let mut a = good_alarm();
            a.event_time_ms = t;
            verdict(&a)
        };
        let oldest = NOW - MAX_EVENT_AGE_MS - MAX_CLOCK_SKEW_MS;
        assert_eq!(at(oldest), "ok");
        assert_eq!(at(NOW + MAX_CLOCK_SKEW_MS), "ok");
        assert_eq!(
            at(0),
            "event time 1970-01-01 08:00:00 +08:00 is more than 30 days and 10 minutes before the center's clock (2026-12-01 08:00:00 +08:00): older than a box keeps anything waiting"
        );
        assert!(at(oldest - 1).contains("is more than 30 days and 10 minutes before"));
        assert_eq!(
            at(4_102_444_800_000),
            "event time 2100-01-01 08:00:00 +08:00 is more than 10 minutes after the center's clock (2026-12-01 08:00:00 +08:00): check the box's clock (`xl-agent doctor`)"
        );
        assert!(at(NOW + MAX_CLOCK_SKEW_MS + 1).contains("is more than 10 minutes after"));
        // Times no calendar holds are refused too, named in milliseconds.
        assert!(at(i64::MIN).starts_with("event time -9223372036854775808 is more than"));
        assert!(at(i64::MAX).starts_with("event time 9223372036854775807 is more than"));
    }

    #[test]
    fn updates_are_checked_for_numbers_counts_frames_and_the_times_they_set() {
        let good = EventUpdate {
            id: "0199-u1".into(),
            agent_id: "v1".into(),
            event_id: "0199-e".into(),
            seq: 1,
            time_ms: NOW,
            detections: vec![person()],
            frame_width: 768,
            frame_height: 576,
            ..Default::default()
        };
        let verdict = |u: &EventUpdate| check_update(u, NOW).err().unwrap_or_else(|| "ok".into());
        assert_eq!(verdict(&good), "ok");
        let unset = EventUpdate { time_ms: 0, end_time_ms: 0, ..good.clone() };
        assert_eq!(verdict(&unset), "ok", "times not set are not checked");
        for (u, expected) in [
            (
                EventUpdate {
                    detections: vec![Detection { score: f32::NAN, ..person() }],
                    ..good.clone()
                },
                "detection 0's score NaN",
            ),
            (
                EventUpdate { detections: vec![person(); MAX_DETECTIONS + 1], ..good.clone() },
                "257 detections",
            ),
            (EventUpdate { frame_width: 20_000, ..good.clone() }, "a frame of 20000x576"),
            (
                EventUpdate { time_ms: 1, ..good.clone() },
                "time 1970-01-01 08:00:00 +08:00 is more than 30 days",
            ),
            (
                EventUpdate { ended: true, end_time_ms: 4_102_444_800_000, ..good.clone() },
                "end time 2100-01-01 08:00:00 +08:00 is more than 10 minutes after",
            ),
        ] {
            assert!(verdict(&u).starts_with(expected), "{} should say {expected:?}", verdict(&u));
        }
    }

    #[test]
    fn a_signed_alarm_or_update_out_of_bounds_is_refused_naming_itself() {
        let (_dir, v1, _v2, keys) = agents(&["v1"]);
        let t = Topics::default();
        let bad =
            Alarm { detections: vec![Detection { score: f32::NAN, ..person() }], ..good_alarm() };
        let sealed =
            v1.sign(bad.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD]).unwrap();
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &sealed, NOW).unwrap_err().0;
        assert_eq!(err, "alarm 0199-ok: detection 0's score NaN is not a number from 0 to 1");
        let named = validate(&t, &keys, "xl/v1/v1/alarm", &sealed, NOW).unwrap_err().1;
        assert_eq!(named.as_deref(), Some("0199-ok"), "named back to its agent");
        let late = EventUpdate {
            id: "0199-u9".into(),
            agent_id: "v1".into(),
            event_id: "0199-ok".into(),
            seq: 9,
            time_ms: NOW + DAY_MS,
            ..Default::default()
        };
        let sealed = v1
            .sign(late.encode_to_vec(), UPDATE_SIGNATURE_FIELD, &[UPDATE_SNAPSHOT_FIELD])
            .unwrap();
        let err = validate_update(&t, &keys, "xl/v1/v1/event", &sealed, NOW).unwrap_err().0;
        assert!(
            err.starts_with("update 0199-u9: time 2026-12-02 08:00:00 +08:00 is more than"),
            "{err}"
        );
        let named = validate_update(&t, &keys, "xl/v1/v1/event", &sealed, NOW).unwrap_err().1;
        assert_eq!(named.as_deref(), Some("0199-u9"), "named back to its agent");
    }
}
