//! The same operations on both engines, with the same results.

use std::ops::Bound;

use super::*;

/// A sled database in a temporary directory, and a fresh PostgreSQL database on the test
/// process's own server.
fn both() -> (tempfile::TempDir, Vec<Db>) {
    let dir = tempfile::tempdir().unwrap();
    let sled = Db::Sled(sled::Config::new().path(dir.path()).open().unwrap());
    let url = xueliang_pgtest::shared().unwrap().database().unwrap();
    let pg = Db::Postgres(Arc::new(Postgres::open(&url).unwrap()));
    (dir, vec![sled, pg])
}

fn keys(i: Iter) -> Vec<Vec<u8>> {
    i.keys().map(|k| k.unwrap().to_vec()).collect()
}

#[test]
fn both_engines_read_write_and_walk_alike() {
    let (_dir, dbs) = both();
    for db in &dbs {
        let t = db.open_tree("t").unwrap();
        // More keys than one page, with prefixes and the extreme bytes.
        for i in 0..600u32 {
            t.insert(i.to_be_bytes(), format!("v{i}").into_bytes()).unwrap();
        }
        t.insert([0xFFu8, 0xFF], b"top".to_vec()).unwrap();
        t.insert([0u8], b"bottom".to_vec()).unwrap();
        assert_eq!(t.get(7u32.to_be_bytes()).unwrap().as_deref(), Some(&b"v7"[..]));
        assert_eq!(t.len(), 602, "{db:?}");
        let all = keys(t.iter());
        assert_eq!(all.len(), 602);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{db:?}: in key order");
        let back: Vec<_> = t.iter().rev().map(|r| r.unwrap().0.to_vec()).collect();
        assert_eq!(back, all.iter().rev().cloned().collect::<Vec<_>>(), "{db:?}");
        // From both ends at once: every key once.
        let mut it = t.iter();
        let (mut front, mut tail) = (Vec::new(), Vec::new());
        loop {
            match it.next() {
                Some(r) => front.push(r.unwrap().0.to_vec()),
                None => break,
            }
            match it.next_back() {
                Some(r) => tail.push(r.unwrap().0.to_vec()),
                None => break,
            }
        }
        front.extend(tail.into_iter().rev());
        assert_eq!(front, all, "{db:?}: the two ends meet");
        let r = keys(t.range(10u32.to_be_bytes()..=300u32.to_be_bytes()));
        assert_eq!(r.len(), 291, "{db:?}");
        let r = keys(
            t.range((Bound::Excluded(10u32.to_be_bytes()), Bound::Excluded(300u32.to_be_bytes()))),
        );
        assert_eq!(r.len(), 289, "{db:?}");
        assert_eq!(keys(t.scan_prefix([0u8, 0, 1])).len(), 256, "{db:?}");
        assert_eq!(t.count_prefix([0u8, 0, 1]), 256, "{db:?}");
        assert_eq!(t.count_prefix([0xFFu8]), 1, "{db:?}");
        assert_eq!(keys(t.scan_prefix([0xFFu8])), vec![vec![0xFF, 0xFF]], "{db:?}");
        assert_eq!(t.last().unwrap().unwrap().1.as_ref(), b"top");
        assert_eq!(t.first().unwrap().unwrap().1.as_ref(), b"bottom");
        assert_eq!(t.remove([0u8]).unwrap().as_deref(), Some(&b"bottom"[..]));
        assert_eq!(t.remove([0u8]).unwrap(), None);
        // Compare and swap.
        assert_eq!(t.compare_and_swap(b"c", None::<&[u8]>, Some(b"1".to_vec())).unwrap(), Ok(()));
        let stale = t.compare_and_swap(b"c", None::<&[u8]>, Some(b"2".to_vec())).unwrap();
        assert_eq!(stale, Err(Some(IVec::from(b"1"))), "{db:?}");
        assert_eq!(t.compare_and_swap(b"c", Some(b"1"), Some(b"2".to_vec())).unwrap(), Ok(()));
        assert_eq!(t.compare_and_swap(b"c", Some(b"2"), None::<Vec<u8>>).unwrap(), Ok(()));
        assert!(!t.contains_key(b"c").unwrap());
        let v = t.update_and_fetch(b"n", |v| Some(vec![v.map_or(0, |v| v[0]) + 1])).unwrap();
        assert_eq!(v.as_deref(), Some(&[1u8][..]));
        let a = db.generate_id().unwrap();
        assert!(db.generate_id().unwrap() > a);
        t.clear().unwrap();
        assert!(t.is_empty(), "{db:?}");
    }
}

#[test]
fn transactions_see_their_own_writes_and_abort_as_a_whole() {
    let (_dir, dbs) = both();
    for db in &dbs {
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        a.insert(b"gone", b"x".to_vec()).unwrap();
        let seen = write(&[&a, &b], |t| {
            t[0].insert(b"k", b"1".to_vec())?;
            t[1].insert(b"k", b"2".to_vec())?;
            t[0].remove(b"gone")?;
            Ok((t[0].get(b"k")?, t[0].get(b"gone")?))
        })
        .unwrap();
        assert_eq!(seen, (Some(IVec::from(b"1")), None), "{db:?}");
        assert_eq!(b.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(a.get(b"gone").unwrap(), None);
        let refused = transaction(&[&a, &b], |t| {
            t[0].insert(b"k", b"changed".to_vec())?;
            t[1].remove(b"k")?;
            Err::<(), _>(TxError::Abort("no"))
        })
        .unwrap();
        assert_eq!(refused, Err("no"));
        assert_eq!(a.get(b"k").unwrap().as_deref(), Some(&b"1"[..]), "{db:?}: nothing written");
        assert_eq!(b.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    }
}

#[test]
fn many_keys_are_read_and_removed_in_one_statement_alike() {
    let (_dir, dbs) = both();
    for db in &dbs {
        let t = db.open_tree("t").unwrap();
        for i in 0..600u32 {
            t.insert(i.to_be_bytes(), i.to_le_bytes().to_vec()).unwrap();
        }
        let asked = [5u32.to_be_bytes(), 9999u32.to_be_bytes(), 3u32.to_be_bytes()];
        let asked: Vec<&[u8]> = asked.iter().map(|k| &k[..]).collect();
        let got = t.get_many(&asked).unwrap();
        let expected =
            [Some(IVec::from(&5u32.to_le_bytes())), None, Some(IVec::from(&3u32.to_le_bytes()))];
        assert_eq!(got, expected, "{db:?}: in the order asked, absent as none");
        let evens: Vec<[u8; 4]> = (0..600u32).step_by(2).map(u32::to_be_bytes).collect();
        let evens: Vec<&[u8]> = evens.iter().map(|k| &k[..]).collect();
        let seen = write(&[&t], |v| {
            v[0].prefetch(&evens)?;
            for k in &evens {
                v[0].remove(k)?;
            }
            Ok((v[0].get(2u32.to_be_bytes())?, v[0].get(3u32.to_be_bytes())?))
        })
        .unwrap();
        assert_eq!(seen, (None, Some(IVec::from(&3u32.to_le_bytes()))), "{db:?}");
        assert_eq!(t.len(), 300, "{db:?}: every even key removed");
        assert!(keys(t.iter()).iter().all(|k| k[3] % 2 == 1), "{db:?}: only the odd ones left");
    }
}

#[test]
fn concurrent_read_then_insert_transactions_on_postgres_never_both_take_a_key() {
    for isolation in [Isolation::Serializable, Isolation::Snapshot] {
        two_processes_take_each_key_once(isolation);
    }
}

/// Two connection pools, as two center processes would have, each taking the keys it finds
/// absent, in transactions at `isolation`.
fn two_processes_take_each_key_once(isolation: Isolation) {
    let url = xueliang_pgtest::shared().unwrap().database().unwrap();
    let dbs: Vec<Db> =
        (0..2).map(|_| Db::Postgres(Arc::new(Postgres::open(&url).unwrap()))).collect();
    let taken: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = dbs
            .iter()
            .map(|db| {
                s.spawn(move || {
                    let t = db.open_tree("ids").unwrap();
                    let mut mine = 0;
                    for i in 0..200u32 {
                        let won = write_at(isolation, &[&t], |v| {
                            if v[0].get(i.to_be_bytes())?.is_some() {
                                return Ok(false);
                            }
                            v[0].insert(i.to_be_bytes(), b"x".to_vec())?;
                            Ok(true)
                        })
                        .unwrap();
                        mine += u32::from(won);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(taken.iter().sum::<u32>(), 200, "{isolation:?}: each key taken once: {taken:?}");
}

#[test]
fn a_bad_address_and_an_unreachable_server_say_what_to_fix() {
    let e = Postgres::open("postgres://xl:secret@127.0.0.1:1/none").unwrap_err().to_string();
    assert!(e.contains("cannot connect to PostgreSQL 127.0.0.1:1/none"), "{e}");
    assert!(!e.contains("secret"), "{e}");
    let e = "mysql://x".parse::<crate::store::Backend>().unwrap_err();
    assert!(e.contains("postgres://user:password@host:port/database"), "{e}");
}

#[test]
fn a_database_migrated_by_a_newer_center_is_refused_with_both_versions() {
    let server = xueliang_pgtest::shared().unwrap();
    let url = server.database().unwrap();
    drop(Postgres::open(&url).unwrap());
    // Opening again migrates nothing.
    drop(Postgres::open(&url).unwrap());
    let name = url.rsplit('/').next().unwrap();
    assert_eq!(server.psql(name, "SELECT count(*) FROM xl_schema").unwrap().trim(), "1");
    server.psql(name, "INSERT INTO xl_schema (version) VALUES (99)").unwrap();
    let e = Postgres::open(&url).unwrap_err().to_string();
    assert!(e.contains("the schema is at version 99, written by a newer xl-center"), "{e}");
    assert!(e.contains("this one knows up to 1"), "{e}");
}
