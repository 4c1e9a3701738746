use super::*;

fn key() -> Key32 {
    gatehouse_crypto::random_key().unwrap()
}

fn parsed(texts: &[SecretString]) -> Vec<Share> {
    texts
        .iter()
        .map(|t| Share::parse(t.expose()).unwrap())
        .collect()
}

#[test]
fn shares_split_5_of_3_every_three_share_subset_rebuilds_the_key() {
    let key = key();
    let texts = split(&key, 5, 3).unwrap();
    assert_eq!(texts.len(), 5);
    let mut subsets = 0;
    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                let chosen = [&texts[a], &texts[b], &texts[c]];
                // Any order, too.
                let shares: Vec<Share> = chosen
                    .iter()
                    .rev()
                    .map(|t| Share::parse(t.expose()).unwrap())
                    .collect();
                assert_eq!(combine(&shares).unwrap().expose(), key.expose());
                subsets += 1;
            }
        }
    }
    assert_eq!(subsets, 10);
    // All five rebuild it as well.
    assert_eq!(combine(&parsed(&texts)).unwrap().expose(), key.expose());
}

#[test]
fn shares_two_are_consistent_with_every_value_of_a_key_byte() {
    let key = key();
    let shares = parsed(&split(&key, 5, 3).unwrap());
    let sharks = blahaj::Sharks(3);
    let point = |x: u8, y: u8| blahaj::Share::try_from(&[x, y][..]).unwrap();
    for byte in [0usize, 17, 31] {
        let (s1, s2, s3) = (&shares[0], &shares[1], &shares[2]);
        let known = [point(s1.index, s1.y[byte]), point(s2.index, s2.y[byte])];
        // The real third share gives the real byte...
        let real = sharks
            .recover(&[
                known[0].clone(),
                known[1].clone(),
                point(s3.index, s3.y[byte]),
            ])
            .unwrap();
        assert_eq!(real, vec![key.expose()[byte]]);
        // ...and for every value the byte could have, some third share value gives that value:
        // the two shares alone rule none out.
        let mut reachable = [false; 256];
        for guess in 0..=255u8 {
            let out = sharks
                .recover(&[known[0].clone(), known[1].clone(), point(s3.index, guess)])
                .unwrap();
            reachable[usize::from(out[0])] = true;
        }
        assert!(
            reachable.iter().all(|r| *r),
            "two shares ruled out a value of key byte {byte}"
        );
    }
}

#[test]
fn shares_with_one_changed_character_are_refused_alone() {
    let texts = split(&key(), 5, 3).unwrap();
    let text = texts[1].expose();
    assert!(Share::parse(text).is_ok());
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz234567-01890".chars().collect();
    let mut tried = 0;
    for (i, original) in text.char_indices() {
        for &c in &alphabet {
            if c == original {
                continue;
            }
            let mut changed = text.to_owned();
            changed.replace_range(i..i + 1, &c.to_string());
            let err = Share::parse(&changed).unwrap_err();
            assert!(
                matches!(err, ShareError::Checksum | ShareError::Malformed(_)),
                "position {i} changed to {c:?}: {err:?}"
            );
            tried += 1;
        }
    }
    assert!(tried > 2000);
    // Case and whitespace are not changes: an operator may retype in capitals or wrap the line.
    let retyped = format!(
        "  {} \n",
        text.to_ascii_uppercase().replacen('-', "-\n ", 2)
    );
    let share = Share::parse(&retyped).unwrap();
    assert_eq!(share.index, 2);
    assert_eq!(share.threshold, 3);
}

#[test]
fn shares_of_another_key_duplicated_or_too_few_are_refused() {
    let key = key();
    let mine = split(&key, 5, 3).unwrap();
    let theirs = split(&self::key(), 5, 3).unwrap();
    let p = |t: &SecretString| Share::parse(t.expose()).unwrap();
    assert_eq!(
        combine(&[p(&mine[0]), p(&mine[1]), p(&theirs[2])]).unwrap_err(),
        ShareError::WrongKey
    );
    assert_eq!(
        combine(&[p(&mine[0]), p(&mine[1]), p(&mine[1])]).unwrap_err(),
        ShareError::Duplicate(2)
    );
    assert_eq!(
        combine(&[p(&mine[3]), p(&mine[4])]).unwrap_err(),
        ShareError::TooFew { have: 2, need: 3 }
    );
    assert_eq!(KeyId::of_key(&key), p(&mine[0]).key_id);
    // Another split of the same key (new polynomials) names the same key, but its shares do not
    // combine with these: they rebuild some other key, and that is refused too.
    let again = split(&key, 5, 3).unwrap();
    assert_eq!(
        combine(&[p(&mine[0]), p(&mine[1]), p(&again[2])]).unwrap_err(),
        ShareError::NotRebuilt
    );
    assert_eq!(split(&key, 1, 1).unwrap_err(), ShareError::BadCounts);
    assert_eq!(split(&key, 3, 4).unwrap_err(), ShareError::BadCounts);
}
