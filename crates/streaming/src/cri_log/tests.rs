use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 5).unwrap()
}

async fn collect(paths: Vec<PathBuf>, opts: LogOptions) -> String {
    use futures::StreamExt;
    let stream = read_logs(paths, opts).await;
    let chunks: Vec<_> = stream.collect().await;
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&c.unwrap());
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn parses_and_formats_entries() {
    let e = parse_entry(b"2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
    assert_eq!(e.stream, LogStream::Stdout);
    assert!(!e.partial);
    assert_eq!(e.content, b"hello world");
    assert_eq!(format_timestamp(&e.time), "2016-10-06T00:17:09.669794202Z");
    assert_eq!(
        parse_entry(b"2016-10-06T00:17:09Z stderr P ")
            .unwrap()
            .content,
        b""
    );
    assert!(parse_entry(b"garbage").is_none());
}

#[test]
fn long_lines_are_split_into_partials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::open(&path, Default::default()).unwrap();
    let long = vec![b'x'; MAX_ENTRY_CONTENT * 2 + 10];
    w.write_at(t(0), LogStream::Stdout, &long).unwrap();
    w.write_at(t(0), LogStream::Stdout, b"\n").unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(kinds, ["P", "P", "F"]);
}

#[tokio::test]
async fn reader_reassembles_partials_filters_streams_and_adds_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::open(&path, Default::default()).unwrap();
    w.write_at(t(0), LogStream::Stdout, b"par").unwrap();
    w.finish_at(t(0), LogStream::Stdout).unwrap();
    w.write_at(t(1), LogStream::Stderr, b"err1\n").unwrap();
    w.write_at(t(2), LogStream::Stdout, b"out2\nout3\n")
        .unwrap();
    // A hand-written partial sequence across another stream's entry.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(f, "{} stdout P ab", format_timestamp(&t(3))).unwrap();
    writeln!(f, "{} stderr F e", format_timestamp(&t(3))).unwrap();
    writeln!(f, "{} stdout F cd", format_timestamp(&t(4))).unwrap();
    let files = vec![path.clone()];
    let all = collect(files.clone(), LogOptions::default()).await;
    assert_eq!(all, "par\nerr1\nout2\nout3\ne\nabcd\n");
    let only_out = collect(
        files.clone(),
        LogOptions {
            stderr: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(only_out, "par\nout2\nout3\nabcd\n");
    let stamped = collect(
        files.clone(),
        LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stamped, format!("{} abcd\n", format_timestamp(&t(3))));
    let since = collect(
        files.clone(),
        LogOptions {
            since_time: Some(t(2)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since, "out2\nout3\ne\nabcd\n");
    let limited = collect(
        files,
        LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited, "par\ner");
}

#[tokio::test]
async fn rotation_keeps_max_files_and_tail_spans_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let opts = LogWriterOptions {
        max_size: 200,
        max_files: 3,
    };
    let mut w = LogWriter::open(&path, opts).unwrap();
    for i in 0..40 {
        w.write_at(t(i), LogStream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    let files = log_files_oldest_first(&path);
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[2], path);
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 200);
    }
    let tail = collect(
        files.clone(),
        LogOptions {
            tail_lines: Some(8),
            ..Default::default()
        },
    )
    .await;
    let expected: String = (32..40).map(|i| format!("line {i}\n")).collect();
    assert_eq!(tail, expected);
    let all = collect(files, LogOptions::default()).await;
    assert!(all.ends_with("line 39\n"));
    assert!(!all.contains("line 0\n"));
}

#[tokio::test]
async fn follow_reads_growth_and_rotation_until_stopped() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let opts = LogWriterOptions {
        max_size: 120,
        max_files: 5,
    };
    let mut w = LogWriter::open(&path, opts).unwrap();
    w.write_at(t(0), LogStream::Stdout, b"first\n").unwrap();
    let (running_tx, running_rx) = watch::channel(true);
    let mut stream = Box::pin(
        read_logs(
            log_files_oldest_first(&path),
            LogOptions {
                follow: true,
                running: Some(running_rx),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"first\n");
    let writer = std::thread::spawn(move || {
        for i in 0..10 {
            w.write_at(t(i), LogStream::Stdout, format!("more {i}\n").as_bytes())
                .unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        w
    });
    let mut got = String::new();
    while !got.contains("more 9\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("follow delivers new lines")
            .unwrap()
            .unwrap();
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let expected: String = (0..10).map(|i| format!("more {i}\n")).collect();
    assert_eq!(got, expected);
    let _w = writer.join().unwrap();
    assert!(log_files_oldest_first(&path).len() > 1, "rotated meanwhile");
    running_tx.send(false).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(end.is_none(), "stream ends once the container stopped");
}
