using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;

namespace Truestock.Bench;

/// <summary>Where the hub's sampled time went in one load phase.</summary>
public sealed record ProfileResult(string Phase, string TracePath, long Samples, long BusySamples, List<(string Category, double Percent)> Busy,
    long LoopSamples, List<(string Category, double Percent)> Loop, List<(string Method, double Percent)> TopLeaves);

/// <summary>
/// A CPU profile of the hub under load, with what this machine has: the runtime's own EventPipe
/// sample profiler, driven through Microsoft.Diagnostics.NETCore.Client and read back with
/// TraceEvent (both come with BenchmarkDotNet), so no profiler has to be installed. The sampler
/// sees managed threads only, every millisecond, whether they run or wait; samples of threads
/// parked in a wait are set apart, and a thread inside SQLite's native code (inserts, fsync)
/// is counted under the managed frame that called it. GC threads are native and not sampled.
/// Set TRUESTOCK_PROFILE_STACKS=1 to also print the 20 most common busy stacks.
/// </summary>
public sealed class Profiler(Scale scale, string hubDll, string workDir, string artifacts)
{
    // Frames that mean the thread is parked rather than working.
    private static readonly string[] IdleFrames =
    [
        "LowLevelLifoSemaphore", "WaitForSignal", "WaitOneNoCheck", "Monitor.Wait", "Thread.Sleep", "SocketAsyncEngine.EventLoop",
        "WaitHandle.Wait", "LowLevelMonitor", "WaitForSocketEvents", "ManualResetEventSlim.Wait", "SemaphoreSlim.Wait", "PortableThreadPool+GateThread",
        "TimerQueue.TimerThread", "ConsoleStream", "StreamReader.Read", "FileSystemWatcher",
    ];

    // First match wins, so the more specific names come first.
    private static readonly (string Category, string[] Frames)[] ReplayCategories =
    [
        ("replay: reading the journal (SQLite)", ["ReadCommands", "SqliteDataReader"]),
        ("replay: command payload JSON", ["System.Text.Json."]),
        ("replay: timestamps", ["DateTimeOffset.Parse", "AdoJournal.ParseTime"]),
        ("replay: engine decisions (Truestock.Core)", ["Truestock.Core."]),
        ("snapshot: read, decompress", ["ReadLatestSnapshot", "GZipStream", "Inflater"]),
    ];

    private static readonly (string Category, string[] Frames)[] Categories =
    [
        ("journal: commit (WAL write + fsync)", ["SqliteTransaction.Commit"]),
        ("journal: inserts (SQLite statements, binding)", ["AdoJournal.Append"]),
        ("journal: command payload JSON", ["Work`2.Payload", "Work`2[System.__Canon,System.__Canon].Payload"]),
        ("engine decisions (Truestock.Core)", ["Truestock.Core."]),
        ("sequencer: other (queue, answers, snapshots, views)", ["Truestock.Server.Engine."]),
        ("request handlers: parse, validate, fingerprint, answer", ["Truestock.Server.Http."]),
        ("JSON (System.Text.Json) outside the loop", ["System.Text.Json."]),
        ("Kestrel, sockets, HTTP pipeline", ["Microsoft.AspNetCore.", "System.Net.", "System.IO.Pipelines."]),
    ];

    public async Task<List<ProfileResult>> Run()
    {
        var results = new List<ProfileResult>();
        await using var hub = ServerProcess.StartHub(hubDll, Path.Combine(workDir, "profile-hub", "hub.db"));
        await hub.WaitReady("/health/ready", TimeSpan.FromMinutes(1));
        var skus = scale.Quick ? 2_000 : 10_000;
        string[] locations = ["P1", "P2", "P3", "P4"];
        foreach (var l in locations)
        {
            await Setup.Put(hub.Control, $"/v1/locations/{l}", Bodies.Location("warehouse"));
        }
        await Setup.Put(hub.Control, "/v1/channels/web", Bodies.Channel(locations));
        var positions = skus * locations.Length;
        await Setup.PostBatches(hub.Control, new LazyBatches(positions / 1000, b => (Bodies.Events(Enumerable.Range(b * 1000, 1000).Select(p =>
            (Action<StringBuilder>)(sb => Bodies.Event(sb, string.Create(CultureInfo.InvariantCulture, $"ps-{p}"), "received",
                string.Create(CultureInfo.InvariantCulture, $"P{p / locations.Length}"), locations[p % locations.Length], 1_000_000, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero))))), 1000)),
            4, "profile seed");

        var duration = TimeSpan.FromSeconds(scale.Quick ? 4 : 8);
        results.Add(await Phase(hub, "reservations", duration, async (client, deadline) =>
        {
            var buyers = client.Connections;
            await LoadRun.Workers(buyers, async w =>
            {
                var rng = new Random(w + 1);
                var n = 0;
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    var id = string.Create(CultureInfo.InvariantCulture, $"pr-{w}-{n++}");
                    var (status, _) = await client.Send(HttpMethod.Post, "/v1/reservations",
                        Bodies.Reservation(id, "web", string.Create(CultureInfo.InvariantCulture, $"P{rng.Next(skus)}"), 1));
                    if (status == 201)
                    {
                        await client.Send(HttpMethod.Post, $"/v1/reservations/{id}/{(rng.Next(5) == 0 ? "release" : "commit")}", null);
                    }
                }
            });
        }, scale.Buyers));

        var batch = 0;
        results.Add(await Phase(hub, "ingestion", duration, async (client, deadline) =>
        {
            await LoadRun.Workers(4, async w =>
            {
                var rng = new Random(w + 100);
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    var b = Interlocked.Increment(ref batch);
                    var body = Bodies.Events(Enumerable.Range(0, 1000).Select(i => (Action<StringBuilder>)(sb =>
                        Bodies.Event(sb, string.Create(CultureInfo.InvariantCulture, $"pi-{b}-{i}"), i % 2 == 0 ? "received" : "sold",
                            string.Create(CultureInfo.InvariantCulture, $"P{rng.Next(skus)}"), locations[rng.Next(locations.Length)], 1,
                            new DateTimeOffset(2026, 1, 2, 0, 0, 0, TimeSpan.Zero).AddMilliseconds(b * 1000 + i)))));
                    await client.Send(HttpMethod.Post, "/v1/events", body);
                }
            });
        }, 4));
        results.Add(await Restart(hub));
        return results;
    }

    /// <summary>
    /// Kills the hub, deletes its snapshots and samples the new process from as soon as its
    /// diagnostic port answers until it is ready: a profile of replaying the whole journal.
    /// </summary>
    private async Task<ProfileResult> Restart(ServerProcess hub)
    {
        var data = Path.Combine(workDir, "profile-hub", "hub.db");
        hub.Kill();
        await hub.DisposeAsync();
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={data};Pooling=False"))
        {
            c.Open();
            using var delete = c.CreateCommand();
            delete.CommandText = "DELETE FROM snapshots";
            delete.ExecuteNonQuery();
        }
        var path = Path.Combine(artifacts, "profile-recovery.nettrace");
        await using var restarted = ServerProcess.StartHub(hubDll, data);
        EventPipeSession? session = null;
        for (var attempt = 0; session is null && attempt < 500; attempt++)
        {
            try
            {
                session = new DiagnosticsClient(restarted.Pid).StartEventPipeSession(Providers(), requestRundown: true, circularBufferMB: 256);
            }
            catch (Exception ex) when (ex is ServerNotAvailableException or TimeoutException or IOException)
            {
                // The runtime has not opened its diagnostic port yet.
                await Task.Delay(10);
            }
        }
        if (session is null)
        {
            throw new InvalidOperationException("Could not attach to the restarted hub's diagnostic port.");
        }
        Log.Line($"profile/recovery: sampling the restarted hub (pid {restarted.Pid}) until it is ready, into {path}");
        await using (var file = File.Create(path))
        {
            var copy = session.EventStream.CopyToAsync(file);
            var ready = await restarted.WaitReady("/health/ready", TimeSpan.FromMinutes(5));
            Log.Line($"profile/recovery: ready {ready.TotalSeconds:F2} s after start");
            await session.StopAsync(CancellationToken.None);
            await copy;
        }
        session.Dispose();
        await restarted.StopGracefully(TimeSpan.FromMinutes(2));
        var result = Analyse("recovery", path, "Sequencer.Recover", ReplayCategories);
        Log.Line($"profile/recovery: {result.BusySamples:N0} busy samples; recovery: " +
            string.Join(", ", result.Loop.Select(c => $"{c.Category} {c.Percent:F0} %")));
        return result;
    }

    private static EventPipeProvider[] Providers() =>
    [
        new("Microsoft-DotNETCore-SampleProfiler", EventLevel.Informational),
        // Method load and rundown events name the JIT-compiled frames.
        new("Microsoft-Windows-DotNETRuntime", EventLevel.Informational, (long)ClrTraceEventParser.Keywords.Default),
    ];

    private async Task<ProfileResult> Phase(ServerProcess hub, string name, TimeSpan duration, Func<LoadClient, long, Task> load, int connections)
    {
        using var client = new LoadClient(hub.BaseAddress, connections);
        await client.Warm();
        // The load starts first and runs past the trace on both sides, so the trace sees steady state only.
        var warm = TimeSpan.FromSeconds(2);
        var deadline = Stopwatch.GetTimestamp() + (long)((warm + duration + TimeSpan.FromSeconds(1)).TotalSeconds * Stopwatch.Frequency);
        var running = load(client, deadline);
        await Task.Delay(warm);
        var path = Path.Combine(artifacts, $"profile-{name}.nettrace");
        Log.Line($"profile/{name}: sampling the hub (pid {hub.Pid}) for {duration.TotalSeconds:F0} s into {path}");
        var session = new DiagnosticsClient(hub.Pid).StartEventPipeSession(Providers(), requestRundown: true, circularBufferMB: 256);
        await using (var file = File.Create(path))
        {
            var copy = session.EventStream.CopyToAsync(file);
            await Task.Delay(duration);
            await session.StopAsync(CancellationToken.None);
            await copy;
        }
        session.Dispose();
        await running;
        var result = Analyse(name, path, "Sequencer.RunBatch", Categories);
        Log.Line($"profile/{name}: {result.BusySamples:N0} busy samples of {result.Samples:N0}; the loop: " +
            string.Join(", ", result.Loop.Select(c => $"{c.Category} {c.Percent:F0} %")));
        return result;
    }

    /// <param name="focus">A frame that marks the samples of interest (the loop, or recovery).</param>
    private static ProfileResult Analyse(string name, string path, string focus, (string Category, string[] Frames)[] categories)
    {
        var etlx = TraceLog.CreateFromEventPipeDataFile(path);
        using var log = new TraceLog(etlx);
        long samples = 0, busy = 0, loop = 0;
        var busyBy = new Dictionary<string, long>(StringComparer.Ordinal);
        var loopBy = new Dictionary<string, long>(StringComparer.Ordinal);
        var leaves = new Dictionary<string, long>(StringComparer.Ordinal);
        var idle = new Dictionary<string, long>(StringComparer.Ordinal);
        var stacks = new Dictionary<string, long>(StringComparer.Ordinal);
        var frames = new List<string>(64);
        foreach (var ev in log.Events)
        {
            if (ev.ProviderName != "Microsoft-DotNETCore-SampleProfiler")
            {
                continue;
            }
            frames.Clear();
            for (var s = ev.CallStack(); s is not null && frames.Count < 256; s = s.Caller)
            {
                frames.Add(s.CodeAddress.FullMethodName ?? "?");
            }
            if (frames.Count == 0)
            {
                continue;
            }
            samples++;
            // A parked thread shows its wait within the few frames nearest the leaf.
            if (frames.Take(8).Any(f => IdleFrames.Any(i => f.Contains(i, StringComparison.Ordinal))))
            {
                var idleLeaf = "(idle) " + string.Join(" < ", frames.Take(3));
                idle[idleLeaf] = idle.GetValueOrDefault(idleLeaf) + 1;
                continue;
            }
            busy++;
            var category = Categorise(frames, categories);
            busyBy[category] = busyBy.GetValueOrDefault(category) + 1;
            var leaf = frames.FirstOrDefault(f => f.Length > 0 && f != "?") ?? "?";
            if (Environment.GetEnvironmentVariable("TRUESTOCK_PROFILE_STACKS") is not null)
            {
                var key = string.Join(" < ", frames.Take(6).Select(f => f.Split('(')[0]));
                stacks[key] = stacks.GetValueOrDefault(key) + 1;
            }
            leaves[leaf] = leaves.GetValueOrDefault(leaf) + 1;
            if (frames.Any(f => f.Contains(focus, StringComparison.Ordinal)))
            {
                loop++;
                loopBy[category] = loopBy.GetValueOrDefault(category) + 1;
            }
        }
        try
        {
            File.Delete(etlx);
        }
        catch (IOException)
        {
            // The converted copy is only a cache; the .nettrace stays.
        }
        static List<(string, double)> Share(Dictionary<string, long> by, long total) =>
            by.OrderByDescending(kv => kv.Value).Select(kv => (kv.Key, total > 0 ? kv.Value * 100.0 / total : 0)).ToList();
        foreach (var (k, v) in stacks.OrderByDescending(kv => kv.Value).Take(20))
        {
            Log.Line($"  profile/{name}: {v:N0} busy samples {k}");
        }
        foreach (var (k, v) in idle.OrderByDescending(kv => kv.Value).Take(stacks.Count > 0 ? 8 : 0))
        {
            Log.Line($"  profile/{name}: {v:N0} samples {k}");
        }
        return new ProfileResult(name, path, samples, busy, Share(busyBy, busy), loop, Share(loopBy, loop),
            [.. Share(leaves, busy).Take(25)]);
    }

    private static string Categorise(List<string> frames, (string Category, string[] Frames)[] categories)
    {
        foreach (var (category, names) in categories)
        {
            if (frames.Any(f => names.Any(n => f.Contains(n, StringComparison.Ordinal))))
            {
                return category;
            }
        }
        return "other (runtime, thread pool, collections)";
    }

    /// <summary>Writes artifacts/bench/profile.md.</summary>
    public static string Markdown(List<ProfileResult> results)
    {
        var sb = new StringBuilder("# Hub CPU profile (EventPipe sample profiler)\n\n");
        sb.Append("Samples of managed threads every millisecond; \"busy\" leaves out threads parked in a wait. ");
        sb.Append("Time inside SQLite's native code counts under the managed frame that called it, so \"commit\" includes the fsync wait. GC threads are not sampled.\n");
        foreach (var r in results)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n## {r.Phase}\n\ntrace: `{Path.GetFileName(r.TracePath)}`; {r.BusySamples:N0} busy samples of {r.Samples:N0}; {r.LoopSamples:N0} in {(r.Phase == "recovery" ? "recovery" : "the sequencing loop")}.\n\n");
            sb.Append(r.Phase == "recovery" ? "| where start-up recovery's time goes | share |\n|---|---:|\n" : "| where the sequencing loop's time goes | share |\n|---|---:|\n");
            foreach (var (c, p) in r.Loop)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| {c} | {p:F1} % |\n");
            }
            sb.Append("\n| where all busy threads' time goes | share |\n|---|---:|\n");
            foreach (var (c, p) in r.Busy)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| {c} | {p:F1} % |\n");
            }
            sb.Append("\n| leaf frame (top 25, busy samples) | share |\n|---|---:|\n");
            foreach (var (m, p) in r.TopLeaves)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| `{m.Replace("|", "\\|", StringComparison.Ordinal)}` | {p:F1} % |\n");
            }
        }
        return sb.ToString();
    }
}
