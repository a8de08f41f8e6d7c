//! The render functions on a store, against values worked out by hand
//! from graphite-web's code.

use super::*;
use crate::server::store::Store;

fn store(points: &[(&str, i64, f64)]) -> Store {
    let mut store = Store::new();
    for &(k, t, v) in points {
        store.put(k, t, v);
    }
    store
}

fn run(store: &Store, query: &str) -> Result<String, RenderError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let request = Request::parse(&params, 10_000)?;
    let (body, _) = render(&request, &mut |use_source| use_source(store))?;
    Ok(String::from_utf8(body).unwrap())
}

fn data() -> Store {
    let mut points = Vec::new();
    for i in 0..6 {
        let t = 1000 + 10 * i;
        points.push(("h.a.cpu", t, i as f64));
        points.push(("h.b.cpu", t, 10.0 * i as f64));
    }
    store(&points)
}

const RANGE: &str = "from=995&until=1050";

#[test]
fn aggregates_name_and_tag_as_graphite_web() {
    let s = data();
    let out = run(&s, &format!("target=sumSeries(h.*.cpu)&{RANGE}")).unwrap();
    assert_eq!(
        out,
        r#"[{"target": "sumSeries(h.*.cpu)", "tags": {"name": "sumSeries(h.*.cpu)", "aggregatedBy": "sum"}, "datapoints": [[0.0, 1000], [11.0, 1010], [22.0, 1020], [33.0, 1030], [44.0, 1040], [55.0, 1050]]}]"#
    );
    let out = run(&s, &format!("target=averageSeries(h.a.cpu)&{RANGE}")).unwrap();
    assert!(out.starts_with(r#"[{"target": "averageSeries(h.a.cpu)", "tags": {"name": "h.a.cpu", "aggregatedBy": "average"}"#), "{out}");
    let out = run(&s, &format!("target=maxSeries(h.a.cpu,h.b.cpu)&{RANGE}")).unwrap();
    assert!(
        out.contains(r#""target": "maxSeries(h.a.cpu,h.b.cpu)""#) && out.contains("[50.0, 1050]"),
        "{out}"
    );
    let out = run(&s, &format!("target=minSeries(h.*.cpu)&{RANGE}")).unwrap();
    assert!(out.contains("[5.0, 1050]"), "{out}");
    assert_eq!(
        run(&s, &format!("target=sumSeries(nothing.*)&{RANGE}")).unwrap(),
        "[]"
    );
}

#[test]
fn transforms() {
    let s = data();
    let out = run(&s, &format!("target=scale(h.a.cpu,2.5)&{RANGE}")).unwrap();
    assert!(out.starts_with(r#"[{"target": "scale(h.a.cpu,2.5)", "tags": {"name": "h.a.cpu", "scale": "2.5"}, "datapoints": [[0.0, 1000], [2.5, 1010]"#), "{out}");
    let out = run(&s, &format!("target=derivative(h.b.cpu)&{RANGE}")).unwrap();
    assert!(
        out.contains(r#""datapoints": [[null, 1000], [10.0, 1010]"#),
        "{out}"
    );
    let out = run(&s, &format!("target=perSecond(h.b.cpu)&{RANGE}")).unwrap();
    assert!(out.contains(r#""tags": {"name": "h.b.cpu", "perSecond": "1"}, "datapoints": [[null, 1000], [1.0, 1010]"#), "{out}");
    let out = run(&s, &format!("target=alias(h.a.cpu,'x y')&{RANGE}")).unwrap();
    assert!(
        out.starts_with(r#"[{"target": "x y", "tags": {"name": "h.a.cpu"}"#),
        "{out}"
    );
    let out = run(&s, &format!("target=aliasByNode(h.*.cpu,1,-1)&{RANGE}")).unwrap();
    assert!(
        out.contains(r#""target": "a.cpu""#) && out.contains(r#""target": "b.cpu""#),
        "{out}"
    );
    let out = run(
        &s,
        &format!("target=aliasByNode(sumSeries(h.*.cpu),0)&{RANGE}"),
    )
    .unwrap();
    assert!(out.starts_with(r#"[{"target": "h""#), "{out}");
}

#[test]
fn summarize_and_moving_average() {
    let s = data();
    let out = run(&s, &format!("target=summarize(h.a.cpu,'30s')&{RANGE}")).unwrap();
    // Buckets from 990: [990,1020) holds 0,1; [1020,1050) 2,3,4; [1050,1080) 5.
    assert_eq!(
        out,
        r#"[{"target": "summarize(h.a.cpu, \"30s\", \"sum\")", "tags": {"name": "h.a.cpu", "summarize": "30s", "summarizeFunction": "sum"}, "datapoints": [[1.0, 990], [9.0, 1020], [5.0, 1050]]}]"#
    );
    let out = run(
        &s,
        &format!("target=summarize(h.a.cpu,'30s','max',true)&{RANGE}"),
    )
    .unwrap();
    assert!(
        out.contains(r#""target": "summarize(h.a.cpu, \"30s\", \"max\", true)""#)
            && out.contains("[2.0, 1000]"),
        "{out}"
    );
    let out = run(&s, "target=movingAverage(h.a.cpu,2)&from=1015&until=1050").unwrap();
    // Fetched again from 995: values 0..5 at 1000..1050; each point averages the two before it.
    assert_eq!(
        out,
        r#"[{"target": "movingAverage(h.a.cpu,2)", "tags": {"name": "h.a.cpu", "movingAverage": "2"}, "datapoints": [[0.5, 1020], [1.5, 1030], [2.5, 1040], [3.5, 1050]]}]"#
    );
    let out = run(
        &s,
        "target=movingAverage(h.a.cpu,'20s')&from=1015&until=1050",
    )
    .unwrap();
    assert!(
        out.contains(r#""target": "movingAverage(h.a.cpu,\"20s\")""#)
            && out.contains("[0.5, 1020]"),
        "{out}"
    );
}

#[test]
fn bad_requests_say_why() {
    let s = data();
    assert!(matches!(
        run(&s, "target=nope(a)"),
        Err(RenderError::UnknownFunction(_))
    ));
    assert!(matches!(
        run(&s, "target=scale(a)"),
        Err(RenderError::Argument(_))
    ));
    assert!(matches!(
        run(&s, "target=a&from=soon"),
        Err(RenderError::Time { param: "from", .. })
    ));
    assert!(matches!(
        run(&s, "target=a&format=png"),
        Err(RenderError::Format(_))
    ));
    assert!(matches!(
        run(&s, "target=a&maxDataPoints=x"),
        Err(RenderError::MaxDataPoints(_))
    ));
    assert!(matches!(
        run(&s, "target=a&from=5&until=5"),
        Err(RenderError::EmptyRange)
    ));
    assert!(matches!(
        run(&s, "target=sum(a"),
        Err(RenderError::Target(_))
    ));
    // A variadic function's extra arguments are named by its last
    // parameter, with their position (found by the fuzzer: this panicked).
    match run(&s, "target=minSeries(h.a.cpu,'5min',true)") {
        Err(RenderError::Argument(message)) => assert!(
            message.contains("seriesLists (argument 2) must be a series list"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    match run(&s, "target=movingAverage()") {
        Err(RenderError::Argument(message)) => assert!(message.contains("missing seriesList")),
        other => panic!("{other:?}"),
    }
    let by_keyword = run(
        &s,
        &format!("target=movingAverage(seriesList=h.a.cpu,windowSize=2)&{RANGE}"),
    );
    assert!(by_keyword.unwrap().contains("movingAverage(h.a.cpu,2)"));
    assert_eq!(run(&s, "from=-1h").unwrap(), "[]");
    let csv = run(&s, &format!("target=h.a.cpu&format=csv&{RANGE}")).unwrap();
    assert!(
        csv.starts_with("h.a.cpu,1970-01-01 00:16:40,0.0\r\n"),
        "{csv}"
    );
}
