// Package paired compares two targets that were driven with the same
// sessions at the same moments: a load test's target and its compared
// target, or a canary's candidate pod and the reference pod of the version
// it replaces.
//
// It owns the statistics, not the measuring. Time is cut into intervals in
// which both targets saw the same arrivals, so that a pair of values
// differs by the targets and by noise, not by load; a confidence interval
// comes from a circular moving-block bootstrap over those intervals (blocks
// of about the cube root of their number, so that intervals correlated by
// sessions spanning them are resampled together), the same resample
// applied to both targets, widened by sqrt(n/(n-1)) for small samples. A
// difference is a finding when its interval excludes no change and it is
// at least a minimum effect, so that noise between two equal targets is not
// reported.
//
// Two statistics are built on that: the mean of per-interval values (the
// load test's log ratio of each interval's percentile, the difference of
// each interval's error rate), and a percentile of the responses pooled
// over the intervals resampled (PooledLogRatios), which a canary at a few
// messages a second needs, as an interval of its own holds too few
// responses for a tail percentile.
//
// Data enters as per-interval values or per-interval latencies of the two
// targets; it leaves as Differences, each with its sentence.
package paired
