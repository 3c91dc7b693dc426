//! The wire contract: round trips, tolerance of unknown fields, and golden encodings that make
//! an accidental wire change fail. Regenerate the golden files only for an intended change:
//! `XL_BLESS=1 cargo test -p xueliang-proto`, and say why in the commit.

use std::path::PathBuf;

use prost::Message;
use xueliang_proto::signing::hex;
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{
    AgentConfig, AgentStatus, Alarm, Box, CenterStatus, ClipChunk, ConfigAck, Detection, Dispatch,
    EventUpdate, Health, Receipt, RuleKind, SCHEMA_VERSION, Severity, Snapshot, decode_limited,
};

fn sample_alarm() -> Alarm {
    Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: "019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8091".into(),
        agent_id: "village-7".into(),
        camera_id: "reservoir-east".into(),
        rule_id: "reservoir-intrusion".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: 1_763_800_000_123,
        detections: vec![Detection {
            class_name: "person".into(),
            class_id: 0,
            score: 0.875,
            r#box: Some(Box { x1: 0.25, y1: 0.5, x2: 0.375, y2: 0.875 }),
            track_id: 42,
        }],
        zone_id: "east-bank".into(),
        snapshot_jpeg: vec![0xff, 0xd8, 0xff, 0xd9].into(),
        model_id: "nanodet-g-416-coco".into(),
        model_version: "1".into(),
        frame_width: 768,
        frame_height: 576,
        signature: vec![0x5a; 64].into(),
        snapshot_sha256: xueliang_proto::signing::sha256(&[0xff, 0xd8, 0xff, 0xd9]).into(),
        snapshot_follows: false,
        opens_event: false,
    }
}

fn sample_update() -> EventUpdate {
    EventUpdate {
        schema_version: SCHEMA_VERSION as i32,
        id: "019a8f2e-9d00-7d3e-9a4b-0c5d6e7f80a0".into(),
        agent_id: "village-7".into(),
        event_id: "019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8091".into(),
        seq: 3,
        time_ms: 1_763_800_312_000,
        ended: true,
        end_time_ms: 1_763_800_301_500,
        duration_ms: 301_377,
        peak_count: 4,
        detections: sample_alarm().detections,
        snapshot_jpeg: vec![0xff, 0xd8, 0xff, 0xd9].into(),
        frame_width: 768,
        frame_height: 576,
        reminder: false,
        signature: vec![0x5d; 64].into(),
        snapshot_sha256: xueliang_proto::signing::sha256(&[0xff, 0xd8, 0xff, 0xd9]).into(),
    }
}

fn sample_status() -> AgentStatus {
    AgentStatus {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: "village-7".into(),
        state: State::Online as i32,
        version: "0.1.0".into(),
        config_version: 3,
        time_ms: 1_763_800_000_000,
    }
}

fn sample_health() -> Health {
    Health {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: "village-7".into(),
        time_ms: 1_763_800_000_000,
        cameras: vec![xueliang_proto::CameraHealth {
            camera_id: "reservoir-east".into(),
            online: true,
            decode_fps: 25.0,
            infer_fps: 5.0,
            inference_ms: 33.5,
            reconnects: 1,
            last_error: String::new(),
        }],
        outbox_depth: 2,
        outbox_oldest_age_ms: 1500,
        outbox_dropped: 0,
        errors: 0,
    }
}

fn sample_config() -> AgentConfig {
    AgentConfig {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: "village-7".into(),
        version: 3,
        config_toml: "agent_id = \"village-7\"\n".into(),
        issued_time_ms: 1_763_800_000_000,
        signature: vec![0x5b; 64].into(),
    }
}

fn sample_ack() -> ConfigAck {
    ConfigAck {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: "village-7".into(),
        version: 3,
        applied: false,
        reason: "zone east-bank: polygon has 2 points, needs at least 3".into(),
        time_ms: 1_763_800_000_000,
    }
}

fn sample_receipt() -> Receipt {
    Receipt {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: "village-7".into(),
        alarm_ids: vec!["019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8091".into()],
        time_ms: 1_763_800_000_000,
        signature: vec![0x5c; 64].into(),
        snapshot_alarm_ids: vec!["019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8092".into()],
        update_ids: Vec::new(),
        clip_chunks: Vec::new(),
        refused_clip_chunks: Vec::new(),
        refused_ids: Vec::new(),
    }
}

fn sample_dispatch() -> Dispatch {
    Dispatch {
        schema_version: SCHEMA_VERSION as i32,
        dispatch_id: "d-1".into(),
        station_id: "pcs-01".into(),
        alarm: Some(sample_alarm()),
        dispatched_by: "duty-officer-1".into(),
        note: "请派员查看".into(),
        time_ms: 1_763_800_000_500,
        location: "七村水库东岸".into(),
        signature: Default::default(),
    }
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.hex"))
}

/// Compares the encoding with the committed golden file (or writes it under `XL_BLESS=1`).
fn check_golden(name: &str, encoded: &[u8]) {
    let path = golden_path(name);
    let actual = hex(encoded);
    if std::env::var_os("XL_BLESS").is_some() {
        std::fs::write(&path, format!("{actual}\n")).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with XL_BLESS=1)", path.display()));
    assert_eq!(
        actual,
        expected.trim(),
        "the wire encoding of {name} changed: if intended, bump or document it and re-bless"
    );
}

#[test]
fn every_message_round_trips_and_matches_its_golden_encoding() {
    fn check<M: Message + Default + PartialEq + std::fmt::Debug>(name: &str, m: M) {
        let bytes = m.encode_to_vec();
        assert_eq!(decode_limited::<M>(&bytes).expect("decodes"), m, "{name}");
        check_golden(name, &bytes);
    }
    check("alarm", sample_alarm());
    check("agent_status", sample_status());
    check("health", sample_health());
    check("agent_config", sample_config());
    check("config_ack", sample_ack());
    check("receipt", sample_receipt());
    check("dispatch", sample_dispatch());
    check(
        "snapshot",
        Snapshot {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: "village-7".into(),
            alarm_id: "019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8092".into(),
            jpeg: vec![0xff, 0xd8, 0xff, 0xd9].into(),
        },
    );
    check(
        "center_status",
        CenterStatus {
            schema_version: SCHEMA_VERSION as i32,
            online: true,
            version: "0.1.0".into(),
            time_ms: 1_763_800_000_000,
            capabilities: Vec::new(),
            signature: Default::default(),
            run: 0,
        },
    );
    // Control messages agents and stations act on are signed by the center.
    check(
        "center_status_signed",
        CenterStatus {
            schema_version: SCHEMA_VERSION as i32,
            online: false,
            version: "0.2.0".into(),
            time_ms: 1_763_800_000_000,
            capabilities: vec![xueliang_proto::CAPABILITY_EVENTS.into()],
            signature: vec![0x5a; 64].into(),
            run: 42,
        },
    );
    check("dispatch_signed", Dispatch { signature: vec![0xa5; 64].into(), ..sample_dispatch() });
    // Events: an opening alarm, an update that ends its event, a receipt naming the update, and
    // a center that says it takes updates.
    check("alarm_opening_event", Alarm { opens_event: true, ..sample_alarm() });
    check("event_update", sample_update());
    check(
        "receipt_with_updates",
        Receipt { update_ids: vec![sample_update().id], ..sample_receipt() },
    );
    // Clips: a chunk of an event's clip, and a receipt naming it.
    let chunk = ClipChunk {
        schema_version: SCHEMA_VERSION as i32,
        clip_id: "019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f80a0".into(),
        agent_id: "village-7".into(),
        camera_id: "reservoir-east".into(),
        event_id: sample_alarm().id,
        start_time_ms: 1_763_799_995_000,
        duration_ms: 21_000,
        size: 3_000_000,
        sha256: vec![0x11; 32].into(),
        width: 1920,
        height: 1080,
        stream: "record".into(),
        masked: false,
        offset: 131_072,
        data: vec![0, 0, 0, 1, 0x65].into(),
        signature: vec![0x3c; 64].into(),
    };
    let chunk_id = xueliang_proto::clip_chunk_id(&chunk.clip_id, chunk.offset);
    check("clip_chunk", chunk);
    check(
        "receipt_with_clip_chunks",
        Receipt {
            clip_chunks: vec![chunk_id],
            refused_clip_chunks: vec![xueliang_proto::clip_chunk_id("019a8f2e-refused", 0)],
            ..sample_receipt()
        },
    );
    check(
        "receipt_with_refused_ids",
        Receipt {
            refused_ids: vec!["019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f8093".into()],
            ..sample_receipt()
        },
    );
    check(
        "center_status_with_events",
        CenterStatus {
            schema_version: SCHEMA_VERSION as i32,
            online: true,
            version: "0.2.0".into(),
            time_ms: 1_763_800_000_000,
            capabilities: vec![xueliang_proto::CAPABILITY_EVENTS.into()],
            signature: Default::default(),
            run: 0,
        },
    );
}

#[test]
fn unknown_fields_from_a_newer_writer_are_skipped() {
    let mut bytes = sample_alarm().encode_to_vec();
    // Field 99, varint 7; field 100, length-delimited "future"; field 101, fixed32.
    bytes.extend_from_slice(&[0x98, 0x06, 0x07]);
    bytes.extend_from_slice(&[0xa2, 0x06, 6]);
    bytes.extend_from_slice(b"future");
    bytes.extend_from_slice(&[0xad, 0x06, 1, 2, 3, 4]);
    let decoded: Alarm = decode_limited(&bytes).expect("unknown fields are tolerated");
    assert_eq!(decoded, sample_alarm());
}

#[test]
fn an_older_reader_sees_zero_values_for_fields_it_lacks() {
    // A writer that only knew fields 1..=3 of Alarm.
    let old = Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: "x".into(),
        agent_id: "a".into(),
        ..Default::default()
    };
    let decoded: Alarm = decode_limited(&old.encode_to_vec()).expect("decodes");
    assert_eq!(decoded.kind, RuleKind::Unspecified as i32);
    assert!(decoded.snapshot_jpeg.is_empty());
    assert!(decoded.detections.is_empty());
}

#[test]
fn an_alarm_from_an_agent_older_than_events_is_an_instant_event() {
    // The encoding of an alarm that never set field 19 is what an older agent sends.
    let old = sample_alarm().encode_to_vec();
    let decoded: Alarm = decode_limited(&old).expect("decodes");
    assert!(!decoded.opens_event);
    // And an older center, which does not know field 19 or EventUpdate, still reads the alarm
    // that opens an event (unknown fields are skipped): checked by the golden bytes being the
    // plain alarm's plus the one field.
    let opening = Alarm { opens_event: true, ..sample_alarm() }.encode_to_vec();
    assert_eq!(opening.len(), old.len() + 3, "one field more (2-byte tag, 1-byte value)");
}

#[test]
fn garbage_and_oversized_payloads_are_refused_with_a_reason() {
    let err = decode_limited::<Alarm>(&[0xff, 0xff, 0xff]).expect_err("garbage");
    assert!(err.to_string().contains("not a valid Alarm"), "{err}");
    let big = vec![0u8; xueliang_proto::MAX_MESSAGE_BYTES + 1];
    let err = decode_limited::<Alarm>(&big).expect_err("too large");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}
