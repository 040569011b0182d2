using System.Diagnostics;
using System.Globalization;

namespace Truestock.Bench;

/// <summary>Latencies of many requests, kept raw per worker and merged once at the end.</summary>
public sealed class Latencies
{
    private readonly List<long>[] _perWorker;

    public Latencies(int workers)
    {
        _perWorker = new List<long>[workers];
        for (var i = 0; i < workers; i++)
        {
            _perWorker[i] = new List<long>(1024);
        }
    }

    /// <summary>Records one request's duration in Stopwatch ticks; each worker writes only its own list, so no lock is needed.</summary>
    public void Add(int worker, long ticks) => _perWorker[worker].Add(ticks);

    public LatencySummary Summarise()
    {
        var all = new List<long>(_perWorker.Sum(l => l.Count));
        foreach (var list in _perWorker)
        {
            all.AddRange(list);
        }
        all.Sort();
        return new LatencySummary(all.Count, Ms(Percentile(all, 0.50)), Ms(Percentile(all, 0.99)), Ms(Percentile(all, 0.999)),
            all.Count == 0 ? 0 : Ms(all[^1]));
    }

    private static long Percentile(List<long> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return 0;
        }
        // Nearest-rank: the smallest value with at least p of the samples at or below it.
        var rank = (int)Math.Ceiling(p * sorted.Count) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Count - 1)];
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}

/// <summary>Request latency percentiles in milliseconds.</summary>
public sealed record LatencySummary(long Count, double P50Ms, double P99Ms, double P999Ms, double MaxMs);

/// <summary>CPU time and peak resident memory of a process, read from /proc (Linux only).</summary>
public static class ProcStats
{
    // The kernel reports utime and stime in clock ticks of USER_HZ, which is 100 on every Linux
    // architecture .NET runs on (sysconf(_SC_CLK_TCK) is not exposed by .NET).
    internal const double ClockTicksPerSecond = 100.0;

    /// <summary>User plus system CPU seconds the process has used so far, or NaN when it cannot be read.</summary>
    public static double CpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name is in parentheses and may hold spaces; the fields after the last ')' are fixed.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After the name: state is field 3 of the man page, so utime (14) and stime (15) are at 11 and 12.
            var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) / ClockTicksPerSecond;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return double.NaN;
        }
    }

    /// <summary>Peak resident set size (VmHWM) in bytes, or 0 when it cannot be read.</summary>
    public static long PeakRssBytes(int pid) => StatusKb(pid, "VmHWM:") * 1024;

    /// <summary>Bytes the process has passed to write calls so far (wchar in /proc/pid/io), or 0 when it cannot be read.</summary>
    public static long WrittenBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/io"))
            {
                if (line.StartsWith("wchar:", StringComparison.Ordinal))
                {
                    return long.Parse(line["wchar:".Length..].Trim(), CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            // Not readable (another user's process, or it has exited): treat as no writes.
        }
        return 0;
    }

    /// <summary>Current resident set size (VmRSS) in bytes, or 0 when it cannot be read.</summary>
    public static long RssBytes(int pid) => StatusKb(pid, "VmRSS:") * 1024;

    /// <summary>
    /// Resets the peak RSS to the current RSS (writing 5 to clear_refs), so that the next reading
    /// is the peak of one scenario rather than of the process's life. Returns false when the
    /// kernel refuses; the peak then covers everything since the process started.
    /// </summary>
    public static bool ResetPeak(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long StatusKb(int pid, string key)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    var digits = line[key.Length..].Trim().Split(' ')[0];
                    return long.Parse(digits, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            // A process that has just exited has no status file; report nothing rather than fail the run.
        }
        return 0;
    }
}

/// <summary>CPU and peak memory of one server process over one scenario.</summary>
public sealed class ProcessWindow
{
    private readonly int _pid;
    private readonly double _cpuStart;
    private readonly Stopwatch _wall = Stopwatch.StartNew();

    public ProcessWindow(int pid)
    {
        _pid = pid;
        ProcStats.ResetPeak(pid);
        _cpuStart = ProcStats.CpuSeconds(pid);
    }

    public ProcessUsage Stop() =>
        new(ProcStats.CpuSeconds(_pid) - _cpuStart, _wall.Elapsed.TotalSeconds, ProcStats.PeakRssBytes(_pid));
}

/// <summary>CPU seconds used, wall seconds elapsed, and peak RSS over a window.</summary>
public sealed record ProcessUsage(double CpuSeconds, double WallSeconds, long PeakRssBytes)
{
    /// <summary>Average cores busy over the window (1.0 = one core fully used).</summary>
    public double Cores => WallSeconds > 0 ? CpuSeconds / WallSeconds : 0;
}

/// <summary>Progress lines with the time since the harness started.</summary>
public static class Log
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public static void Line(string message) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{Clock.Elapsed.TotalSeconds,7:F1}s] {message}"));
}

/// <summary>Number formatting for the report, always invariant.</summary>
public static class Fmt
{
    public static string N(double value, int decimals = 0) =>
        double.IsNaN(value) ? "n/a" : value.ToString("N" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    public static string Mb(long bytes) => N(bytes / (1024.0 * 1024.0), 0) + " MiB";

    public static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string I(int value) => value.ToString(CultureInfo.InvariantCulture);
}
