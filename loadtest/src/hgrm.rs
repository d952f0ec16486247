//! HdrHistogram's percentile-distribution text format (`.hgrm`), the one
//! `outputPercentileDistribution` prints and HdrHistogram's plotter reads:
//! a header, one line per percentile step (value, percentile as a fraction,
//! total count up to the value, 1/(1−percentile)), and a footer with mean,
//! standard deviation, max, count, buckets and sub-buckets. Values are
//! written in milliseconds (recorded in µs, scaled by 1,000).

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Percentile steps per halving of the distance to 100 % (HdrHistogram's default).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The sub-buckets per bucket of a histogram with `sigfig` significant digits.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// The `.hgrm` text of `h` (values in µs), values in ms with 3 decimals.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1_000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:>12.3} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / SCALE,
            h.stdev() / SCALE,
            h.highest_equivalent(h.max()) as f64 / SCALE,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:>12.3}, StdDeviation   = {stdev:>12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:>12.3}, Total count    = {:>12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// `(percentile as a fraction, value µs)` points of the percentile
/// spectrum (the `.hgrm` lines), for the HTML report.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                h.highest_equivalent(v.value_iterated_to()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{histogram, MAX_US};

    #[test]
    fn the_text_format() {
        let mut h = histogram(MAX_US, 3);
        for us in 1..=1_000u64 {
            let _ = h.record(us * 10); // 10 µs .. 10 ms, uniform
        }
        let text = percentile_distribution(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // The first line: the smallest value, percentile 0.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first, ["0.010", "0.000000000000", "1", "1.00"]);
        // The median line: 5 ms, 500 values up to it.
        let median = lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some("0.500000000000"))
            .expect("a 50 % line");
        let median: Vec<&str> = median.split_whitespace().collect();
        assert_eq!(median, ["5.003", "0.500000000000", "500", "2.00"]);
        // The last data line is the max at percentile 1 with the full
        // count and no 1/(1-p) column; then the footer.
        let footer = lines.iter().position(|l| l.starts_with("#[Mean")).unwrap();
        let last: Vec<&str> = lines[footer - 1].split_whitespace().collect();
        assert_eq!(last, ["10.007", "1.000000000000", "1000"]);
        // Mean of 10..10000 µs is 5.005 ms (5.006 from the buckets' middles);
        // the standard deviation of that uniform spread is 2.887 ms.
        assert_eq!(
            lines[footer],
            "#[Mean    =        5.006, StdDeviation   =        2.887]"
        );
        assert_eq!(
            lines[footer + 1],
            "#[Max     =       10.007, Total count    =         1000]"
        );
        assert!(lines[footer + 2].ends_with("SubBuckets     =         2048]"));
        // Percentiles and counts never go down.
        let rows: Vec<(f64, u64)> = lines[2..footer]
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect();
        assert!(rows
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(spectrum(&h).len(), rows.len());
    }

    #[test]
    fn an_empty_histogram_has_a_header_and_footer_only() {
        let text = percentile_distribution(&histogram(MAX_US, 3));
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0]"));
        assert!(spectrum(&histogram(MAX_US, 3)).is_empty());
    }
}
