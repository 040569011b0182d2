using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Truestock.Bench;

/// <summary>A server under load: the hub or the baseline.</summary>
public sealed record Target(string Name, ServerProcess Server, bool IsHub);

/// <summary>What one system did in one scenario.</summary>
public sealed record Measured(
    string System,
    double Seconds,
    long Operations,
    LatencySummary Latency,
    ProcessUsage Server,
    double LoadGeneratorCores,
    JournalFigures? Journal,
    string Statuses,
    List<string> ServerLog,
    double? DatabaseCpuSeconds = null,
    long? BaselineRetries = null)
{
    public double PerSecond => Seconds > 0 ? Operations / Seconds : 0;

    /// <summary>Server CPU microseconds per operation: what each operation costs the server, whatever the concurrency.</summary>
    public double CpuMicrosPerOp => Operations > 0 ? Server.CpuSeconds / Operations * 1e6 : double.NaN;

    /// <summary>
    /// CPU microseconds per operation of the database server's processes, when the database is a
    /// server of its own (PostgreSQL); SQLite's work is inside the server process and in <see cref="CpuMicrosPerOp"/>.
    /// </summary>
    public double? DatabaseCpuMicrosPerOp => DatabaseCpuSeconds is { } db && Operations > 0 ? db / Operations * 1e6 : null;
}

/// <summary>
/// The HTTP scenarios of issue 6: hot-SKU flash sale, uniform reservations, batched event
/// ingestion and availability reads, each run against the hub and then against the baseline,
/// one server loaded at a time, from this process.
/// </summary>
/// <param name="backend">The store both servers run on and how they are started; SQLite files in <paramref name="workDir"/> when null.</param>
public sealed class HttpScenarios(Scale scale, Report report, string hubDll, string workDir, HttpBackend? backend = null)
{
    /// <summary>The SQLite hub's data file; after <see cref="Run"/> it holds the whole mixed journal, and a shutdown snapshot.</summary>

    private readonly HttpBackend _backend = backend ?? HttpBackend.Sqlite(hubDll, workDir);

    /// <summary>The report section of every row, and the prefix of every detail and progress line.</summary>
    private string Section => _backend.Section;

    private const string HotSku = "HOT";
    private const int LowConcurrency = 32;
    private static readonly string[] FlashLocations = ["F-W1", "F-W2", "F-S1"];
    private static readonly DateTimeOffset SeedTime = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly Dictionary<string, Measured> _flash = new(StringComparer.Ordinal);
    private ServerProcess[] _servers = [];
    private readonly Dictionary<string, Measured> _uniform = new(StringComparer.Ordinal);

    /// <summary>The database server's CPU seconds at the start of the scenario being measured (scenarios run one at a time).</summary>
    private double _databaseCpuBefore = double.NaN;

    /// <summary>The baseline's retried transactions at the start of the scenario being measured.</summary>
    private long _baselineRetriesBefore;

    public async Task Run()
    {
        Log.Line($"{Section}: starting the hub and the baseline as server processes");
        await using var hub = _backend.StartHub();
        await using var baseline = _backend.StartBaseline();
        await hub.WaitReady("/health/ready", TimeSpan.FromMinutes(1));
        await baseline.WaitReady("/health/ready", TimeSpan.FromMinutes(1));
        Target[] targets = [new("hub", hub, true), new("baseline", baseline, false)];
        _servers = [hub, baseline];

        var flashDetails = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            flashDetails[t.Name] = await FlashSale(t);
        }
        report.Details[$"{Section}.flash-sale"] = flashDetails;
        AddLoadRows("flash sale (1 SKU, 3 locations, 5 channels)", _flash["hub"], _flash["baseline"], "writes/s", hot: true);

        var seed = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            seed[t.Name] = await SeedUniform(t);
        }
        report.Details[$"{Section}.uniform-seed"] = seed;

        var uniformDetails = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            _uniform[t.Name] = await Uniform(t, scale.Buyers, scale.UniformDuration, "un");
            uniformDetails[t.Name] = _uniform[t.Name];
        }
        report.Details[$"{Section}.uniform"] = uniformDetails;
        AddLoadRows($"uniform reservations ({scale.UniformSkus:N0} SKUs × {scale.UniformLocations} locations)", _uniform["hub"], _uniform["baseline"], "writes/s", hot: false);

        // With 1,000 requests always outstanding, latency is at least 1,000 ÷ throughput (Little's law),
        // so p99 ≤ 10 ms cannot be met there below 100,000 requests/s. The same requests from a few
        // clients show the latency of one request when the server is busy but not queued up.
        var few = new Dictionary<string, Measured>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            few[t.Name] = await Uniform(t, LowConcurrency, scale.ReadDuration, "lc");
        }
        report.Details[$"{Section}.uniform-32-clients"] = few;
        AddLoadRows($"uniform reservations, {LowConcurrency} clients", few["hub"], few["baseline"], "writes/s", hot: false, latencyOnly: true);
        report.Add(new Row
        {
            Section = Section, Scenario = "flash sale vs uniform", Metric = "hot-SKU throughput as a share of uniform", Unit = "%",
            Hub = _flash["hub"].PerSecond / _uniform["hub"].PerSecond * 100,
            Baseline = _flash["baseline"].PerSecond / _uniform["baseline"].PerSecond * 100,
            Target = "≥ 90 %", TargetValue = 90,
        });

        var ingest = new Dictionary<string, Measured>(StringComparer.Ordinal);
        var batches = IngestionBatches();
        foreach (var t in targets)
        {
            ingest[t.Name] = await Ingest(t, batches);
        }
        report.Details[$"{Section}.ingestion"] = ingest;
        AddLoadRows("event ingestion (batches of 1,000 mixed events)", ingest["hub"], ingest["baseline"], "events/s", hot: false, ingestion: true);

        var single = new Dictionary<string, Measured>(StringComparer.Ordinal);
        var bulk = new Dictionary<string, Measured>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            single[t.Name] = await Reads(t, bulk: false);
            bulk[t.Name] = await Reads(t, bulk: true);
        }
        report.Details[$"{Section}.reads-single"] = single;
        report.Details[$"{Section}.reads-bulk"] = bulk;
        AddLoadRows("availability reads, single SKU", single["hub"], single["baseline"], "reads/s", hot: false);
        AddLoadRows("availability reads, bulk 500 SKUs", bulk["hub"], bulk["baseline"], "requests/s", hot: false);
        report.Add(new Row
        {
            Section = Section, Scenario = "availability reads, bulk 500 SKUs", Metric = "SKU answers", Unit = "SKUs/s",
            Hub = bulk["hub"].PerSecond * 500, Baseline = bulk["baseline"].PerSecond * 500,
        });

        report.Details[$"{Section}.hub-final-rss-bytes"] = ProcStats.RssBytes(hub.Pid);
        Log.Line($"{Section}: stopping the servers; the hub writes a snapshot at shutdown");
        var stop = await hub.StopGracefully(TimeSpan.FromMinutes(5));
        report.Details[$"{Section}.hub-shutdown-seconds"] = stop.TotalSeconds;
        Log.Line($"{Section}: the hub stopped in {stop.TotalSeconds:F1} s");
    }

    // ------------------------------------------------------------------ flash sale

    private async Task<object> FlashSale(Target t)
    {
        var http = t.Server.Control;
        foreach (var loc in FlashLocations)
        {
            await Setup.Put(http, $"/v1/locations/{loc}", Bodies.Location(loc.EndsWith("S1", StringComparison.Ordinal) ? "store" : "warehouse"));
        }
        var channels = new string[5];
        for (var c = 0; c < channels.Length; c++)
        {
            // Each channel prefers a different location first, as real channels do.
            channels[c] = $"f{c + 1}";
            await Setup.Put(http, $"/v1/channels/{channels[c]}", Bodies.Channel(Enumerable.Range(0, 3).Select(i => FlashLocations[(i + c) % 3])));
        }
        var units = scale.FlashUnitsPerLocation;
        var total = (long)units * FlashLocations.Length;
        await Setup.PostBatches(http, [(Bodies.Events(FlashLocations.Select((loc, i) => (Action<StringBuilder>)(sb =>
            Bodies.Event(sb, $"flash-stock-{i}", "received", HotSku, loc, units, SeedTime)))), 3)], 1, "flash stock");

        var buyers = scale.Buyers;
        Log.Line($"{Section}/flash-sale {t.Name}: {buyers} buyers, {total:N0} units of one SKU, reserve then commit (1 in 5 release instead) until sold out or {scale.FlashCap.TotalSeconds:F0} s");
        using var client = new LoadClient(t.Server.BaseAddress, buyers);
        await client.Warm();
        var run = new LoadRun(client, buyers);
        long committed = 0, released = 0, writes = 0, soldOutTicks = 0, insufficient = 0;
        var stop = 0;
        var (before, window, harness) = await Begin(t);
        var watch = Stopwatch.StartNew();
        using var progress = Progress(watch, () => $"{Section}/flash-sale {t.Name}: {Interlocked.Read(ref committed):N0} of {total:N0} units committed, {Interlocked.Read(ref writes) / watch.Elapsed.TotalSeconds:N0} writes/s");
        await LoadRun.Workers(buyers, async w =>
        {
            var rng = new Random(7919 * (w + 1));
            var n = 0;
            while (Volatile.Read(ref stop) == 0 && watch.Elapsed < scale.FlashCap)
            {
                var id = string.Create(CultureInfo.InvariantCulture, $"fs-{w}-{n++}");
                var (status, _) = await run.Send(w, HttpMethod.Post, "/v1/reservations", Bodies.Reservation(id, channels[(w + n) % channels.Length], HotSku, 1));
                if (status == 201)
                {
                    Interlocked.Increment(ref writes);
                    var release = rng.Next(5) == 0;
                    var (second, _) = await run.Send(w, HttpMethod.Post, $"/v1/reservations/{id}/{(release ? "release" : "commit")}", null);
                    if (second != 200)
                    {
                        continue;
                    }
                    Interlocked.Increment(ref writes);
                    if (release)
                    {
                        Interlocked.Increment(ref released);
                    }
                    else if (Interlocked.Increment(ref committed) >= total)
                    {
                        Interlocked.CompareExchange(ref soldOutTicks, watch.ElapsedTicks, 0);
                        Volatile.Write(ref stop, 1);
                    }
                }
                else if (status == 409)
                {
                    // Every unit is held or gone: a real buyer retries shortly, as held units may be released.
                    Interlocked.Increment(ref insufficient);
                    await Task.Delay(2);
                }
                else
                {
                    await Task.Delay(10);
                }
            }
        });
        var soldOut = Interlocked.Read(ref soldOutTicks) != 0;
        var seconds = soldOut ? soldOutTicks / (double)Stopwatch.Frequency : watch.Elapsed.TotalSeconds;
        var measured = await End(t, run, before, window, harness, seconds, writes);
        _flash[t.Name] = measured;

        // Oversold units: from the server's own quantities at the end, and from what buyers were told.
        var (_, body) = await client.Send(HttpMethod.Get, $"/v1/availability/{HotSku}", null, readBody: true);
        long negativeAvailable = 0, onHand = 0;
        using (var doc = JsonDocument.Parse(body!))
        {
            foreach (var loc in doc.RootElement.GetProperty("locations").EnumerateArray())
            {
                if (FlashLocations.Contains(loc.GetProperty("locationId").GetString()))
                {
                    negativeAvailable += Math.Max(0, -loc.GetProperty("available").GetInt64());
                    onHand += loc.GetProperty("onHand").GetInt64();
                }
            }
        }
        var oversold = Math.Max(negativeAvailable, Math.Max(0, committed - total));
        var hubCounter = t.IsHub ? (await HubMetricsScrape.Read(t.Server.Control)).Get("truestock_oversold_units_total") : 0;
        Log.Line($"{Section}/flash-sale {t.Name}: {(soldOut ? "sold out" : "NOT sold out (time cap)")} in {seconds:F1} s; committed {committed:N0}, released {released:N0}, 409s {insufficient:N0}; oversold {oversold} units; statuses {run.StatusText()}");
        _oversold[t.Name] = Math.Max(oversold, (long)hubCounter);
        return new
        {
            measured,
            soldOut,
            totalUnits = total,
            committedUnits = committed,
            releasedReservations = released,
            insufficientAnswers = insufficient,
            oversoldUnits = oversold,
            negativeAvailableAtEnd = negativeAvailable,
            hubOversoldUnitsCounter = hubCounter,
        };
    }

    private readonly Dictionary<string, long> _oversold = new(StringComparer.Ordinal);

    // ------------------------------------------------------------------ uniform

    private string[] UniformLocations() =>
        Enumerable.Range(1, scale.UniformLocations).Select(i => string.Create(CultureInfo.InvariantCulture, $"U{i:D2}")).ToArray();

    private static string Sku(int i) => string.Create(CultureInfo.InvariantCulture, $"U{i}");

    private async Task<object> SeedUniform(Target t)
    {
        var http = t.Server.Control;
        var locs = UniformLocations();
        foreach (var loc in locs)
        {
            await Setup.Put(http, $"/v1/locations/{loc}", Bodies.Location("warehouse"));
        }
        for (var c = 0; c < 5; c++)
        {
            await Setup.Put(http, $"/v1/channels/u{c + 1}", Bodies.Channel(locs.Select((_, i) => locs[(i + (c * 3)) % locs.Length])));
        }
        var positions = scale.UniformSkus * locs.Length;
        var batchCount = (positions + 999) / 1000;
        Log.Line($"{Section}/uniform {t.Name}: seeding {positions:N0} positions with {batchCount:N0} batches of received events");
        var window = new ProcessWindow(t.Server.Pid);
        var databaseCpu = _backend.DatabaseCpuSeconds?.Invoke();
        var (seconds, events) = await Setup.PostBatches(http, new LazyBatches(batchCount, b =>
        {
            var from = b * 1000;
            var to = Math.Min(positions, from + 1000);
            return (Bodies.Events(Enumerable.Range(from, to - from).Select(p => (Action<StringBuilder>)(sb =>
                Bodies.Event(sb, string.Create(CultureInfo.InvariantCulture, $"seed-{p}"), "received", Sku(p / locs.Length), locs[p % locs.Length], 1000, SeedTime)))), to - from);
        }), 4, $"uniform seed {t.Name}");
        var usage = window.Stop();
        Log.Line($"{Section}/uniform {t.Name}: seeded {events:N0} positions in {seconds:F1} s ({events / seconds:N0} events/s, peak RSS {Fmt.Mb(usage.PeakRssBytes)})");
        return new { positions, seconds, eventsPerSecond = events / seconds, server = usage, databaseCpuSeconds = _backend.DatabaseCpuSeconds?.Invoke() - databaseCpu };
    }

    private async Task<Measured> Uniform(Target t, int buyers, TimeSpan duration, string prefix)
    {
        Log.Line($"{Section}/uniform {t.Name}: {buyers} buyers for {duration.TotalSeconds:F0} s, random SKU, reserve then commit (1 in 5 release)");
        using var client = new LoadClient(t.Server.BaseAddress, buyers);
        await client.Warm();
        var run = new LoadRun(client, buyers);
        long writes = 0;
        var (before, window, harness) = await Begin(t);
        var watch = Stopwatch.StartNew();
        using var progress = Progress(watch, () => $"{Section}/uniform {t.Name}: {Interlocked.Read(ref writes) / watch.Elapsed.TotalSeconds:N0} writes/s");
        await LoadRun.Workers(buyers, async w =>
        {
            var rng = new Random(104729 * (w + 1));
            var n = 0;
            while (watch.Elapsed < duration)
            {
                var id = string.Create(CultureInfo.InvariantCulture, $"{prefix}-{w}-{n++}");
                var body = Bodies.Reservation(id, string.Create(CultureInfo.InvariantCulture, $"u{rng.Next(5) + 1}"), Sku(rng.Next(scale.UniformSkus)), 1);
                var (status, _) = await run.Send(w, HttpMethod.Post, "/v1/reservations", body);
                if (status != 201)
                {
                    await Task.Delay(status == 409 ? 1 : 10);
                    continue;
                }
                Interlocked.Increment(ref writes);
                var (second, _) = await run.Send(w, HttpMethod.Post, $"/v1/reservations/{id}/{(rng.Next(5) == 0 ? "release" : "commit")}", null);
                if (second == 200)
                {
                    Interlocked.Increment(ref writes);
                }
            }
        });
        var measured = await End(t, run, before, window, harness, watch.Elapsed.TotalSeconds, writes);
        Log.Line($"{Section}/uniform {t.Name}: {measured.PerSecond:N0} writes/s, p99 {measured.Latency.P99Ms:F1} ms; statuses {run.StatusText()}");
        return measured;
    }

    // ------------------------------------------------------------------ ingestion

    /// <summary>Batches of 1,000 mixed events on the uniform positions, built once and sent to both systems.</summary>
    private List<(byte[] Body, int Count)> IngestionBatches()
    {
        var locs = UniformLocations();
        var rng = new Random(31337);
        var batches = new List<(byte[], int)>();
        var at = SeedTime.AddDays(1);
        for (var b = 0; b < scale.IngestEvents / 1000; b++)
        {
            var writers = new List<Action<StringBuilder>>(1000);
            for (var i = 0; i < 1000; i++)
            {
                var id = string.Create(CultureInfo.InvariantCulture, $"ing-{b}-{i}");
                var sku = Sku(rng.Next(scale.UniformSkus));
                var loc = locs[rng.Next(locs.Length)];
                at = at.AddMilliseconds(1);
                var when = at;
                // The mix of a retailer's feeds: mostly receipts and sales, some corrections, counts and returns.
                var (type, q) = (i % 20) switch
                {
                    < 8 => ("received", 1 + rng.Next(5)),
                    < 14 => ("sold", 1),
                    < 16 => ("adjusted", rng.Next(2) == 0 ? -2 : 2),
                    16 => ("damaged", 1),
                    17 => ("counted", 1000),
                    _ => ("return_received", 1),
                };
                writers.Add(sb => Bodies.Event(sb, id, type, sku, loc, q, when));
            }
            batches.Add((Bodies.Events(writers), 1000));
        }
        return batches;
    }

    private async Task<Measured> Ingest(Target t, List<(byte[] Body, int Count)> batches)
    {
        const int senders = 4;
        Log.Line($"{Section}/ingestion {t.Name}: {batches.Count:N0} batches of 1,000 mixed events from {senders} senders");
        using var client = new LoadClient(t.Server.BaseAddress, senders);
        await client.Warm();
        var run = new LoadRun(client, senders);
        long events = 0;
        var next = -1;
        var (before, window, harness) = await Begin(t);
        var watch = Stopwatch.StartNew();
        using var progress = Progress(watch, () => $"{Section}/ingestion {t.Name}: {Interlocked.Read(ref events):N0} events, {Interlocked.Read(ref events) / watch.Elapsed.TotalSeconds:N0}/s");
        await LoadRun.Workers(senders, async w =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < batches.Count && watch.Elapsed < TimeSpan.FromMinutes(3))
            {
                var (status, _) = await run.Send(w, HttpMethod.Post, "/v1/events", batches[i].Body);
                if (status == 200)
                {
                    Interlocked.Add(ref events, batches[i].Count);
                }
            }
        });
        var measured = await End(t, run, before, window, harness, watch.Elapsed.TotalSeconds, events);
        Log.Line($"{Section}/ingestion {t.Name}: {measured.PerSecond:N0} events/s durable; statuses {run.StatusText()}");
        return measured;
    }

    // ------------------------------------------------------------------ reads

    private async Task<Measured> Reads(Target t, bool bulk)
    {
        var workers = bulk ? 16 : 64;
        var rng = new Random(bulk ? 17 : 19);
        var paths = Enumerable.Range(0, 64).Select(_ => bulk
            ? "/v1/channels/u1/availability?" + string.Join('&', Enumerable.Range(0, 500).Select(_ => "sku=" + Sku(rng.Next(scale.UniformSkus))))
            : "/v1/availability/" + Sku(rng.Next(scale.UniformSkus))).ToArray();
        var name = bulk ? "reads-bulk" : "reads-single";
        Log.Line($"{Section}/{name} {t.Name}: {workers} readers for {scale.ReadDuration.TotalSeconds:F0} s");
        using var client = new LoadClient(t.Server.BaseAddress, workers);
        await client.Warm();
        var run = new LoadRun(client, workers);
        long reads = 0;
        var (before, window, harness) = await Begin(t);
        var watch = Stopwatch.StartNew();
        await LoadRun.Workers(workers, async w =>
        {
            var i = w;
            while (watch.Elapsed < scale.ReadDuration)
            {
                var (status, _) = await run.Send(w, HttpMethod.Get, paths[i++ % paths.Length], null);
                if (status == 200)
                {
                    Interlocked.Increment(ref reads);
                }
            }
        });
        var measured = await End(t, run, before, window, harness, watch.Elapsed.TotalSeconds, reads);
        Log.Line($"{Section}/{name} {t.Name}: {measured.PerSecond:N0} requests/s, p99 {measured.Latency.P99Ms:F1} ms; statuses {run.StatusText()}");
        return measured;
    }

    // ------------------------------------------------------------------ measurement and rows

    private async Task<(HubMetricsScrape? Before, ProcessWindow Window, TimeSpan HarnessCpu)> Begin(Target t)
    {
        // The hub writes snapshots in the background (at 2 million positions, for many seconds):
        // every measurement starts only when both servers are quiet, so neither is measured
        // while the other still works, and each scenario starts from the same quiet machine.
        foreach (var server in _servers)
        {
            await WaitIdle(server.Name, () => ProcStats.CpuSeconds(server.Pid), () => ProcStats.WrittenBytes(server.Pid));
        }
        if (_backend.DatabaseCpuSeconds is { } databaseCpu)
        {
            // A database server has background work of its own (checkpoints, autovacuum after a load).
            await WaitIdle("database server", databaseCpu, () => 0);
        }
        var before = t.IsHub ? await HubMetricsScrape.Read(t.Server.Control) : null;
        _baselineRetriesBefore = t.IsHub ? 0 : await BaselineRetries(t.Server);
        foreach (var line in t.Server.TakeNotable())
        {
            Log.Line($"  {t.Name} said (before this scenario): {line}");
        }
        _databaseCpuBefore = _backend.DatabaseCpuSeconds?.Invoke() ?? double.NaN;
        return (before, new ProcessWindow(t.Server.Pid), Process.GetCurrentProcess().TotalProcessorTime);
    }

    /// <summary>Transactions the baseline ran again after a deadlock or serialization failure, since it started.</summary>
    private static async Task<long> BaselineRetries(ServerProcess baseline)
    {
        using var doc = JsonDocument.Parse(await baseline.Control.GetStringAsync("/baseline/stats"));
        return doc.RootElement.GetProperty("deadlockRetries").GetInt64() + doc.RootElement.GetProperty("serializationRetries").GetInt64();
    }

    private async Task<Measured> End(Target t, LoadRun run, HubMetricsScrape? before, ProcessWindow window, TimeSpan harnessCpu,
        double seconds, long operations)
    {
        var usage = window.Stop();
        double? databaseCpu = _backend.DatabaseCpuSeconds is { } readDatabaseCpu ? readDatabaseCpu() - _databaseCpuBefore : null;
        var harness = (Process.GetCurrentProcess().TotalProcessorTime - harnessCpu).TotalSeconds / Math.Max(usage.WallSeconds, 1e-9);
        var notable = t.Server.TakeNotable();
        foreach (var line in notable)
        {
            Log.Line($"  {t.Name} said: {line}");
        }
        JournalFigures? journal = null;
        if (before is not null)
        {
            journal = HubMetricsScrape.Between(before, await HubMetricsScrape.Read(t.Server.Control), usage.WallSeconds);
        }
        long? retries = null;
        if (!t.IsHub)
        {
            retries = await BaselineRetries(t.Server) - _baselineRetriesBefore;
            if (retries > 0)
            {
                Log.Line($"  the baseline ran {retries:N0} transactions again after a deadlock or serialization failure");
            }
        }
        return new Measured(t.Name, seconds, operations, run.Latencies.Summarise(), usage, harness, journal, run.StatusText(), notable, databaseCpu, retries);
    }

    /// <summary>
    /// Waits (at most two minutes) until a server, over half a second, uses less than a tenth of a
    /// core and writes less than 1 MiB: a snapshot is first CPU (serialising) and then disk (the
    /// blob and its fsync), and both would disturb the other server's measurement.
    /// </summary>
    private static async Task WaitIdle(string name, Func<double> cpuSeconds, Func<long> writtenBytes)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromMinutes(2))
        {
            var cpu = cpuSeconds();
            var written = writtenBytes();
            await Task.Delay(500);
            if (double.IsNaN(cpu) || (cpuSeconds() - cpu < 0.05 && writtenBytes() - written < 1 << 20))
            {
                break;
            }
        }
        if (watch.Elapsed > TimeSpan.FromSeconds(1.5))
        {
            Log.Line($"  waited {watch.Elapsed.TotalSeconds:F1} s for the {name} to go quiet (background work such as a snapshot)");
        }
    }

    /// <summary>Prints a progress line every five seconds while a scenario runs.</summary>
    private static Timer Progress(Stopwatch watch, Func<string> line) =>
        new(_ => Log.Line(line()), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));

    /// <param name="latencyOnly">A low-concurrency run: only its latency is held against a target.</param>
    private void AddLoadRows(string scenario, Measured hub, Measured baseline, string unit, bool hot, bool ingestion = false, bool latencyOnly = false)
    {
        var reservation = unit == "writes/s";
        var throughputTargets = reservation && !hot && !latencyOnly;
        report.Add(new Row
        {
            Section = Section, Scenario = scenario, Metric = "throughput", Unit = unit, Hub = hub.PerSecond, Baseline = baseline.PerSecond,
            Target = ingestion ? "≥ 100,000 events/s" : throughputTargets ? "≥ 20,000/s" : null,
            TargetValue = ingestion ? 100_000 : throughputTargets ? 20_000 : null,
        });
        if (reservation && !latencyOnly)
        {
            report.Add(new Row
            {
                Section = Section, Scenario = scenario, Metric = "advantage over the row-lock baseline", Unit = "×",
                Hub = hub.PerSecond / Math.Max(baseline.PerSecond, 1e-9), Target = "≥ 10×", TargetValue = 10,
            });
        }
        report.Add(new Row { Section = Section, Scenario = scenario, Metric = "latency p50", Unit = "ms", Hub = hub.Latency.P50Ms, Baseline = baseline.Latency.P50Ms, Better = Better.Lower });
        report.Add(new Row
        {
            Section = Section, Scenario = scenario, Metric = "latency p99", Unit = "ms", Hub = hub.Latency.P99Ms, Baseline = baseline.Latency.P99Ms, Better = Better.Lower,
            Target = reservation && !hot ? "≤ 10 ms" : null, TargetValue = reservation && !hot ? 10 : null,
        });
        report.Add(new Row { Section = Section, Scenario = scenario, Metric = "latency p99.9", Unit = "ms", Hub = hub.Latency.P999Ms, Baseline = baseline.Latency.P999Ms, Better = Better.Lower });
        if (hot)
        {
            report.Add(new Row
            {
                Section = Section, Scenario = scenario, Metric = "oversold units", Unit = "units", Hub = _oversold["hub"], Baseline = _oversold["baseline"], Better = Better.Lower,
                Target = "= 0 (hub)", TargetValue = 0, Compare = false,
            });
        }
        report.Add(new Row
        {
            Section = Section, Scenario = scenario, Metric = "server CPU per operation", Unit = "µs", Hub = hub.CpuMicrosPerOp, Baseline = baseline.CpuMicrosPerOp, Better = Better.Lower,
            Note = _backend.DatabaseServer ? "the server process alone, without the database server's" : null,
        });
        report.Add(new Row
        {
            Section = Section, Scenario = scenario, Metric = "server CPU busy", Unit = "cores", Hub = hub.Server.Cores, Baseline = baseline.Server.Cores, Better = Better.Lower, Compare = false,
            Note = _backend.DatabaseServer ? "of 2, shared with the database server and the load generator" : "of 2, the load generator uses the rest",
        });
        if (hub.DatabaseCpuMicrosPerOp is { } hubDatabase && baseline.DatabaseCpuMicrosPerOp is { } baselineDatabase)
        {
            report.Add(new Row
            {
                Section = Section, Scenario = scenario, Metric = "database server CPU per operation", Unit = "µs", Hub = hubDatabase, Baseline = baselineDatabase,
                Better = Better.Lower, Note = "the postgres processes",
            });
            report.Add(new Row
            {
                Section = Section, Scenario = scenario, Metric = "server + database CPU per operation", Unit = "µs",
                Hub = hub.CpuMicrosPerOp + hubDatabase, Baseline = baseline.CpuMicrosPerOp + baselineDatabase, Better = Better.Lower,
            });
            report.Add(new Row
            {
                Section = Section, Scenario = scenario, Metric = "database server CPU busy", Unit = "cores",
                Hub = hub.DatabaseCpuSeconds!.Value / Math.Max(hub.Server.WallSeconds, 1e-9), Baseline = baseline.DatabaseCpuSeconds!.Value / Math.Max(baseline.Server.WallSeconds, 1e-9),
                Better = Better.Lower, Compare = false,
            });
        }
        report.Add(new Row { Section = Section, Scenario = scenario, Metric = "server peak RSS", Unit = "MiB", Hub = hub.Server.PeakRssBytes / 1048576.0, Baseline = baseline.Server.PeakRssBytes / 1048576.0, Better = Better.Lower });
        if (hub.Journal is { Commits: > 0 } j)
        {
            report.Add(new Row { Section = Section, Scenario = scenario, Metric = "hub group commits", Unit = "commits/s", Hub = j.CommitsPerSecond, Note = $"mean {Fmt.N(j.MeanBatchCommands, 1)} commands per commit" });
            report.Add(new Row { Section = Section, Scenario = scenario, Metric = "hub journal commit time, mean", Unit = "ms", Hub = j.MeanCommitMs, Better = Better.Lower, Note = $"p99 ≤ {Fmt.N(j.P99CommitMs, 1)} ms; the loop spent {Fmt.N(j.CommitBusyShare * 100, 0)} % of the time committing" });
        }
    }
}
