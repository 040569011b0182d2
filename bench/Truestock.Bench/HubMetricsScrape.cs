using System.Globalization;

namespace Truestock.Bench;

/// <summary>
/// The hub's Prometheus counters at one moment, as far as the harness needs them: the journal
/// commit histogram (time per group commit), the batch-size histogram and the oversell counters.
/// Two scrapes subtract to give the figures of one scenario.
/// </summary>
public sealed class HubMetricsScrape
{
    private readonly Dictionary<string, double> _values = new(StringComparer.Ordinal);

    public static async Task<HubMetricsScrape> Read(HttpClient http)
    {
        var text = await http.GetStringAsync("/metrics");
        var scrape = new HubMetricsScrape();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            var space = line.LastIndexOf(' ');
            if (space > 0 && double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            {
                scrape._values[line[..space]] = v;
            }
        }
        return scrape;
    }

    public double Get(string series) => _values.GetValueOrDefault(series);

    /// <summary>Bucket upper bounds and cumulative counts of a histogram, in order.</summary>
    public List<(double Le, double Count)> Buckets(string name)
    {
        var prefix = name + "_bucket{le=\"";
        return _values.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(kv =>
            {
                var le = kv.Key[prefix.Length..^2];
                return (le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture), kv.Value);
            })
            .OrderBy(b => b.Item1)
            .ToList();
    }

    /// <summary>The journal and batching figures between two scrapes.</summary>
    public static JournalFigures Between(HubMetricsScrape before, HubMetricsScrape after, double seconds)
    {
        var commits = after.Get("truestock_journal_commit_seconds_count") - before.Get("truestock_journal_commit_seconds_count");
        var commitSum = after.Get("truestock_journal_commit_seconds_sum") - before.Get("truestock_journal_commit_seconds_sum");
        var commands = after.Get("truestock_batch_commands_sum") - before.Get("truestock_batch_commands_sum");
        var b0 = before.Buckets("truestock_journal_commit_seconds");
        var b1 = after.Buckets("truestock_journal_commit_seconds");
        var buckets = b1.Select((b, i) => (b.Le, Count: b.Count - (i < b0.Count ? b0[i].Count : 0))).ToList();
        return new JournalFigures(
            Commits: (long)commits,
            CommitsPerSecond: seconds > 0 ? commits / seconds : 0,
            MeanCommitMs: commits > 0 ? commitSum / commits * 1000 : 0,
            P50CommitMs: Quantile(buckets, commits, 0.5) * 1000,
            P99CommitMs: Quantile(buckets, commits, 0.99) * 1000,
            MeanBatchCommands: commits > 0 ? commands / commits : 0,
            CommitBusyShare: seconds > 0 ? commitSum / seconds : 0,
            Histogram: buckets.Select(b => new HistogramBucket(double.IsInfinity(b.Le) ? "+Inf" : b.Le.ToString(CultureInfo.InvariantCulture), (long)b.Count)).ToList());
    }

    /// <summary>The upper bound of the bucket holding quantile q (a histogram gives no finer answer).</summary>
    private static double Quantile(List<(double Le, double Count)> cumulative, double total, double q)
    {
        if (total <= 0)
        {
            return 0;
        }
        foreach (var (le, count) in cumulative)
        {
            if (count >= q * total)
            {
                return double.IsInfinity(le) ? double.NaN : le;
            }
        }
        return double.NaN;
    }
}

/// <summary>Group-commit figures of one scenario, from the hub's own histograms.</summary>
public sealed record JournalFigures(
    long Commits,
    double CommitsPerSecond,
    double MeanCommitMs,
    double P50CommitMs,
    double P99CommitMs,
    double MeanBatchCommands,
    double CommitBusyShare,
    List<HistogramBucket> Histogram);

/// <summary>One cumulative bucket of a Prometheus histogram.</summary>
public sealed record HistogramBucket(string Le, long Count);
