using System.Diagnostics;

namespace Truestock.Bench;

/// <summary>The sections of a run that are not HTTP scenarios, and the plumbing around them.</summary>
public static class Harness
{
    /// <summary>The repository root: the folder holding Truestock.slnx, searched upwards from here and from the working directory.</summary>
    public static string FindRepoRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Truestock.slnx")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("Run the bench from inside the Truestock repository (no Truestock.slnx found above here).");
    }

    /// <summary>Builds the hub in Release so the measured server is the current code, and returns its dll.</summary>
    public static async Task<string> BuildHub(string root)
    {
        Log.Line("build: dotnet build src/Truestock.Server -c Release");
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "build", Path.Combine(root, "src", "Truestock.Server"), "-c", "Release", "--nologo", "-v", "q" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var build = Process.Start(info)!;
        var output = build.StandardOutput.ReadToEndAsync();
        var errors = build.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await build.WaitForExitAsync(limit.Token);
        if (build.ExitCode != 0)
        {
            throw new InvalidOperationException($"Building the hub failed:\n{await output}\n{await errors}");
        }
        var dll = Path.Combine(root, "src", "Truestock.Server", "bin", "Release", "net10.0", "Truestock.Server.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("The hub's Release build is missing.", dll);
    }

    public static async Task Engine(Report report, Scale scale, string artifacts, string work, bool quick)
    {
        const string section = "engine";
        var micro = EngineBenchmarks.Run(artifacts, quick);
        report.Details["engine.benchmarkdotnet"] = micro;
        foreach (var m in micro)
        {
            var reservation = m.Name.StartsWith("reservation", StringComparison.Ordinal);
            report.Add(new Row
            {
                Section = section, Scenario = "BenchmarkDotNet", Metric = m.Name, Unit = "ns/decision", Hub = m.NanosecondsPerDecision, Better = Better.Lower,
            });
            report.Add(new Row
            {
                Section = section, Scenario = "BenchmarkDotNet", Metric = m.Name + ", allocated", Unit = "B/decision", Hub = m.BytesPerDecision ?? double.NaN,
                Better = Better.Lower, Target = "0 B", TargetValue = 0,
                Note = reservation ? "hold objects are state; see docs/performance.md" : null,
            });
        }

        Log.Line($"engine: Stopwatch loop, reservation create + release on one thread for {scale.EngineDuration.TotalSeconds:F0} s");
        var reservations = EngineLoop.Reservations(scale.EngineDuration);
        Log.Line($"engine: Stopwatch loop, received / sold events on one thread for {scale.EngineDuration.TotalSeconds:F0} s");
        var events = EngineLoop.Events(scale.EngineDuration);
        report.Details["engine.loop"] = new[] { reservations, events };
        report.Add(new Row
        {
            Section = section, Scenario = "engine alone, one core", Metric = "reservation decisions", Unit = "/s", Hub = reservations.PerSecond,
            Target = "≥ 2,000,000/s", TargetValue = 2_000_000,
            Note = $"upkeep of the expiry queue and pruning adds {reservations.MaintenanceSeconds / reservations.Seconds * 100:F0} % on top",
        });
        report.Add(new Row { Section = section, Scenario = "engine alone, one core", Metric = "reservation allocated", Unit = "B/decision", Hub = reservations.AllocatedBytesPerDecision, Better = Better.Lower });
        report.Add(new Row { Section = section, Scenario = "engine alone, one core", Metric = "event decisions (received / sold)", Unit = "/s", Hub = events.PerSecond });
        report.Add(new Row { Section = section, Scenario = "engine alone, one core", Metric = "event allocated", Unit = "B/decision", Hub = events.AllocatedBytesPerDecision, Better = Better.Lower });

        Log.Line($"engine: durable in-process, the hub's sequencer and SQLite journal without HTTP, 1,024 clients for {scale.DurableDuration.TotalSeconds:F0} s");
        var durable = await DurableInProcess.Run(Path.Combine(work, "durable", "hub.db"), scale.DurableDuration, 1024);
        report.Details["engine.durable-in-process"] = durable;
        report.Add(new Row
        {
            Section = section, Scenario = "durable in-process (group commit)", Metric = "operations (reservation create / release)", Unit = "/s",
            Hub = durable.PerSecond, Target = "≥ 200,000/s", TargetValue = 200_000,
        });
        report.Add(new Row { Section = section, Scenario = "durable in-process (group commit)", Metric = "latency p99", Unit = "ms", Hub = durable.Latency.P99Ms, Better = Better.Lower });
        report.Add(new Row
        {
            Section = section, Scenario = "durable in-process (group commit)", Metric = "journal commit time, mean", Unit = "ms", Hub = durable.Journal.MeanCommitMs, Better = Better.Lower,
            Note = $"{Fmt.N(durable.Journal.MeanBatchCommands, 0)} commands per commit, {Fmt.N(durable.Journal.CommitBusyShare * 100, 0)} % of the time committing",
        });
        Log.Line($"engine: durable in-process {durable.PerSecond:N0} operations/s, {durable.Journal.MeanBatchCommands:N0} per commit, commit {durable.Journal.MeanCommitMs:F2} ms");
    }

    public static void Memory(Report report, Scale scale)
    {
        Log.Line($"memory: {scale.MemorySkus * (long)scale.MemoryLocations:N0} positions in an in-process shard");
        var m = MemoryScenario.Run(scale.MemorySkus, scale.MemoryLocations);
        report.Details["memory"] = m;
        const string section = "memory";
        var scenario = $"{m.Positions:N0} positions";
        report.Add(new Row
        {
            Section = section, Scenario = scenario, Metric = "bytes per position (received, ids forgotten)", Unit = "B", Hub = m.BytesPerPositionWithHistory,
            Better = Better.Lower, Target = "≤ 300 B", TargetValue = 300, Note = "position + movement history",
        });
        report.Add(new Row { Section = section, Scenario = scenario, Metric = "bytes per position (received, ids remembered)", Unit = "B", Hub = m.BytesPerPositionWithIdempotency, Better = Better.Lower, Note = "+ one event id held 30 days for idempotency" });
        report.Add(new Row { Section = section, Scenario = scenario, Metric = "bytes per position (counted, ids forgotten)", Unit = "B", Hub = m.BytesPerPositionCounted, Better = Better.Lower, Note = "the position alone: a count leaves no movement history" });
        GC.Collect();
    }

    /// <summary>
    /// The HTTP scenarios again with both servers on PostgreSQL: the hub journaling into one
    /// database, the baseline's pooled row-lock transactions in another. PostgreSQL is started by
    /// scripts/postgres.sh in the scratch folder and stopped at the end, also on failure. When it
    /// cannot be started here the section is skipped with a note, not failed.
    /// </summary>
    public static async Task HttpPostgres(Report report, Scale scale, string root, string hubDll, string work)
    {
        const string section = "http-postgres";
        var (pg, unavailable) = await PostgresServer.Start(root, Path.Combine(work, "postgres"));
        if (pg is null)
        {
            Log.Line($"{section}: skipped: {unavailable}");
            report.Notes.Add($"The {section} section was skipped: {unavailable} (scripts/postgres.sh installs PostgreSQL itself when the bench runs as root; or set {PostgresServer.ServerVariable} to the Npgsql connection string of a server to use.)");
            return;
        }
        await using (pg)
        {
            var started = pg.Owned ? "started by scripts/postgres.sh" : $"the server of {PostgresServer.ServerVariable}";
            report.Details[$"{section}.server"] = new
            {
                version = pg.Version,
                started,
                settings = pg.Settings,
                postmasterPid = pg.PostmasterPid,
                baselinePoolConnectionsMax = PostgresBaselineStore.PoolConnectionsMax,
            };
            var hubDatabase = await pg.CreateDatabase("truestock_bench_hub");
            var baselineDatabase = await pg.CreateDatabase("truestock_bench_baseline");
            var cpu = pg.PostmasterPid is null
                ? "The database server is not on this machine, so its CPU is not measured: the server CPU rows leave the database's work out."
                : "Server CPU rows are the hub's or the baseline's process alone; the database server CPU rows are the postgres processes (the postmaster and every process it started, from /proc), measured over the same window. Before each measurement the harness also waits until the postgres processes are quiet (autovacuum, checkpoints).";
            report.Notes.Add($"{section}: PostgreSQL {pg.Version}, {started} on this machine ({string.Join(", ", pg.Settings.Select(kv => $"{kv.Key}={kv.Value}"))}, other settings at their defaults). "
                + $"The hub journals into one database; the baseline works in another, each request one READ COMMITTED transaction on a pool of {PostgresBaselineStore.PoolConnectionsMax} connections, "
                + "taking stock with the same conditional UPDATE (its row lock held until the commit) and locking a reservation with SELECT … FOR UPDATE to commit or release it, with no lock in the process. " + cpu);
            await new HttpScenarios(scale with { UniformSkus = scale.PostgresUniformSkus }, report, hubDll, work, HttpBackend.Postgres(hubDll, work, hubDatabase, baselineDatabase, pg.PostmasterPid is null ? null : pg.CpuSeconds)).Run();
        }
    }

    public static async Task Recovery(Report report, Scale scale, string hubDll, string work, string artifacts)
    {
        // The journal is generated (and cached under artifacts/bench/cache), not the HTTP scenarios' one: see RecoveryScenario.
        var (restarts, details) = await new RecoveryScenario(hubDll, work, Path.Combine(artifacts, "cache")).Run(scale.RecoveryRecords, scale.RecoverySkus);
        report.Details["recovery"] = details;
        const string section = "recovery";
        var journalRecords = restarts.Max(r => r.Case.StartsWith("no snapshot", StringComparison.Ordinal) ? r.ReplayedEvents : 0);
        foreach (var r in restarts)
        {
            var scenario = $"restart: {r.Case}";
            report.Add(new Row
            {
                Section = section, Scenario = scenario, Metric = "time to /health/ready", Unit = "s", Hub = r.ReadySeconds, Better = Better.Lower,
                Note = $"from process start; journal of {journalRecords:N0} records",
            });
            if (r.ReplayedEvents > 0)
            {
                var full = r.Case.StartsWith("no snapshot", StringComparison.Ordinal);
                report.Add(new Row
                {
                    Section = section, Scenario = scenario, Metric = $"journal records replayed ({r.ReplayedEvents:N0} ledger records in {r.ReplayedCommands:N0} commands)", Unit = "records/s", Hub = r.EventsPerSecond,
                    Target = full ? "≥ 1,000,000/s" : null, TargetValue = full ? 1_000_000 : null,
                    Note = full
                        ? $"recovery {Fmt.N(r.RecoverySeconds, 2)} s as the hub reports it"
                        : $"tail replay {Fmt.N(r.ReplaySeconds, 2)} s: recovery {Fmt.N(r.RecoverySeconds, 2)} s less the snapshot-only recovery",
                });
            }
        }
    }

    /// <summary>Says where this run is smaller than the issue asks, so nobody reads a scaled figure as the issue's.</summary>
    public static void AddScaleNotes(Report report, Scale scale, string verb)
    {
        var all = verb == "all";
        if (all || verb is "http" or "postgres")
        {
            report.Notes.Add($"Flash sale: {scale.Buyers:N0} concurrent buyers, {scale.FlashUnitsPerLocation * 3:N0} units, capped at {scale.FlashCap.TotalSeconds:F0} s per system; uniform: {scale.UniformSkus:N0} SKUs × {scale.UniformLocations} locations, {scale.Buyers:N0} buyers for {scale.UniformDuration.TotalSeconds:F0} s, then 32 clients for {scale.ReadDuration.TotalSeconds:F0} s; ingestion: {scale.IngestEvents:N0} events from 4 senders; reads: 64 single / 16 bulk readers for {scale.ReadDuration.TotalSeconds:F0} s each.");
            report.Notes.Add("Before each measurement the harness waits until both server processes are quiet (under a tenth of a core and 1 MiB written in half a second), so a hub snapshot still being written never overlaps the baseline's run; a snapshot taken during the hub's own run is part of the hub's figures (its log lines are in the progress output).");
            report.Notes.Add("Throughput counts successful writes (201 holds and 200 commits/releases); latency covers every request, including 409 answers when stock is gone.");
        }
        if (all || verb == "recovery")
        {
            report.Notes.Add($"Recovery restarts the hub on a journal of {scale.RecoveryRecords:N0} ledger records over {scale.RecoverySkus * 20L:N0} positions, generated in process by the hub's own write path (batches of 1,000 events, and 5 % of the records from single reservation commands) across 100 simulated days, and cached in artifacts/bench/cache; then on the snapshot written at its graceful stop, and on that snapshot plus a tail posted through the API (a tenth of the journal, at most 500,000 events). A record is one ledger row (one decided change to a position)."
                + (scale.Quick ? " The issue asks for 10 million records; --quick uses fewer, and records/s is the rate that matters." : ""));
        }
        if (all || verb == "memory")
        {
            report.Notes.Add($"Memory: {scale.MemorySkus * (long)scale.MemoryLocations:N0} positions ({scale.MemorySkus:N0} SKUs × {scale.MemoryLocations} locations), managed heap only (GC.GetTotalMemory after full collections).");
        }
        if (all || verb == "engine")
        {
            report.Notes.Add("Engine: BenchmarkDotNet in process with a short job; its logs and exports are in artifacts/bench/BenchmarkDotNet.");
        }
    }
}
