using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Truestock.Bench;

/// <summary>Whether a larger or a smaller figure is the better one.</summary>
public enum Better
{
    /// <summary>Throughput-like: more is better.</summary>
    Higher,
    /// <summary>Latency-, memory- or error-like: less is better.</summary>
    Lower,
}

/// <summary>
/// One line of the report: a figure for the hub, the same figure for the baseline measured in the
/// same run (when the scenario has one), and the target from issue 6 when there is one.
/// </summary>
public sealed class Row
{
    public required string Section { get; init; }
    public required string Scenario { get; init; }
    public required string Metric { get; init; }
    public required string Unit { get; init; }
    public required double Hub { get; init; }
    public double? Baseline { get; init; }
    public Better Better { get; init; } = Better.Higher;

    /// <summary>Target text as the issue states it, e.g. "≥ 20,000/s".</summary>
    public string? Target { get; init; }

    /// <summary>The number the target compares against (hub figure, or the ratio for ratio targets).</summary>
    public double? TargetValue { get; init; }

    /// <summary>True when the target is on the advantage over the baseline rather than on the hub's own figure.</summary>
    public bool TargetOnAdvantage { get; init; }

    public string? Note { get; init; }

    /// <summary>False when hub and baseline are shown side by side but a ratio would mean nothing (cores busy, zero against zero).</summary>
    public bool Compare { get; init; } = true;

    /// <summary>
    /// How many times better the hub is than the baseline: hub ÷ baseline for throughput,
    /// baseline ÷ hub for latency, so that above 1 always means the hub is better.
    /// </summary>
    public double? Advantage
    {
        get
        {
            if (Baseline is not { } b || !Compare)
            {
                return null;
            }
            var (num, den) = Better == Better.Higher ? (Hub, b) : (b, Hub);
            return den == 0 ? (num == 0 ? 1 : double.PositiveInfinity) : num / den;
        }
    }

    /// <summary>"met", "missed", or null when this row has no target.</summary>
    public string? Status
    {
        get
        {
            if (TargetValue is not { } target)
            {
                return null;
            }
            var value = TargetOnAdvantage ? Advantage ?? double.NaN : Hub;
            if (double.IsNaN(value))
            {
                return "missed";
            }
            // A ratio target ("hot SKU keeps ≥ 90 %") and an advantage target are always "at least".
            var higher = TargetOnAdvantage || Better == Better.Higher;
            return (higher ? value >= target : value <= target) ? "met" : "missed";
        }
    }
}

/// <summary>The machine a run came from, for the report header and docs/performance.md.</summary>
public sealed record MachineInfo(string Cpu, int Cores, double MemoryGiB, string Os, string Runtime, double LoadAverage1m)
{
    public static MachineInfo Read()
    {
        var cpu = ReadFirst("/proc/cpuinfo", "model name") ?? "unknown";
        var memKb = ReadFirst("/proc/meminfo", "MemTotal") is { } m
            ? double.Parse(m.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture)
            : 0;
        var load = File.Exists("/proc/loadavg")
            ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture)
            : double.NaN;
        return new MachineInfo(cpu, Environment.ProcessorCount, Math.Round(memKb / 1024 / 1024, 1),
            System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription, load);
    }

    private static string? ReadFirst(string path, string key)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
            {
                return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }
        return null;
    }
}

/// <summary>Collects rows and scenario details and writes report.md and report.json.</summary>
public sealed class Report
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public List<Row> Rows { get; } = [];

    /// <summary>Free-form figures per scenario (counts, histograms, settings) for the JSON report.</summary>
    public Dictionary<string, object> Details { get; } = new(StringComparer.Ordinal);

    /// <summary>Things the reader must know to read the figures (scale-downs, skipped parts).</summary>
    public List<string> Notes { get; } = [];

    public void Add(Row row)
    {
        Rows.Add(row);
        var baseline = row.Baseline is { } b ? $", baseline {Fmt.N(b, Decimals(b))}" : "";
        var status = row.Status is { } s ? $" [{s}]" : "";
        Log.Line($"  {row.Section}/{row.Scenario}: {row.Metric} = {Fmt.N(row.Hub, Decimals(row.Hub))} {row.Unit}{baseline}{status}");
    }

    public string Markdown(MachineInfo machine, string command, bool quick, TimeSpan duration)
    {
        var sb = new StringBuilder();
        sb.Append("# Truestock benchmark report\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"- command: `{command}`\n");
        sb.Append(CultureInfo.InvariantCulture, $"- mode: {(quick ? "quick (scaled down)" : "full")}; run took {duration.TotalMinutes:F1} min; finished {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC\n");
        sb.Append(CultureInfo.InvariantCulture, $"- machine: {machine.Cpu}, {machine.Cores} cores, {machine.MemoryGiB} GiB, {machine.Os}, {machine.Runtime}; load average at start {machine.LoadAverage1m:F2}\n");
        sb.Append("- hub and baseline run as separate server processes on 127.0.0.1, one at a time; the load generator shares the same cores.\n");
        sb.Append("- **advantage ×** is how many times better the hub is than the baseline measured in the same run (hub ÷ baseline for throughput, baseline ÷ hub for latency); above 1 means the hub is better.\n\n");
        sb.Append("| section | scenario | metric | hub | baseline | advantage × | target | status |\n");
        sb.Append("|---|---|---|---:|---:|---:|---|---|\n");
        foreach (var r in Rows)
        {
            var hub = Fmt.N(r.Hub, Decimals(r.Hub)) + " " + r.Unit;
            var baseline = r.Baseline is { } b ? Fmt.N(b, Decimals(b)) + " " + r.Unit : "—";
            var advantage = r.Advantage is { } a ? (double.IsInfinity(a) ? "∞" : Fmt.N(a, a < 10 ? 2 : 1)) : "—";
            sb.Append(CultureInfo.InvariantCulture,
                $"| {r.Section} | {r.Scenario} | {r.Metric}{(r.Note is null ? "" : " (" + r.Note + ")")} | {hub} | {baseline} | {advantage} | {r.Target ?? ""} | {r.Status ?? ""} |\n");
        }
        var targets = Rows.Where(r => r.Status is not null).ToList();
        if (targets.Count > 0)
        {
            sb.Append("\n## Targets (issue 6)\n\n| target | measured | status |\n|---|---:|---|\n");
            foreach (var r in targets)
            {
                var measured = r.TargetOnAdvantage
                    ? Fmt.N(r.Advantage ?? double.NaN, 1) + "× the baseline"
                    : Fmt.N(r.Hub, Decimals(r.Hub)) + " " + r.Unit;
                sb.Append(CultureInfo.InvariantCulture, $"| {r.Section} / {r.Scenario}: {r.Metric} {r.Target} | {measured} | {r.Status} |\n");
            }
            sb.Append(CultureInfo.InvariantCulture, $"\n{targets.Count(r => r.Status == "met")} of {targets.Count} targets met.\n");
        }
        if (Notes.Count > 0)
        {
            sb.Append("\n## Notes\n\n");
            foreach (var n in Notes)
            {
                sb.Append("- ").Append(n).Append('\n');
            }
        }
        return sb.ToString();
    }

    public string ToJson(MachineInfo machine, string command, bool quick, TimeSpan duration) =>
        JsonSerializer.Serialize(new
        {
            command,
            mode = quick ? "quick" : "full",
            finishedAt = DateTimeOffset.UtcNow,
            durationSeconds = Math.Round(duration.TotalSeconds, 1),
            machine,
            rows = Rows.Select(r => new
            {
                r.Section,
                r.Scenario,
                r.Metric,
                r.Unit,
                r.Hub,
                r.Baseline,
                advantage = r.Advantage,
                better = r.Better,
                r.Target,
                r.TargetValue,
                r.Status,
                r.Note,
            }),
            details = Details,
            notes = Notes,
        }, Json);

    private static int Decimals(double value)
    {
        var abs = Math.Abs(value);
        return abs == 0 || abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
    }
}
