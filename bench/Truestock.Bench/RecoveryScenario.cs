using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Truestock.Bench;

/// <summary>One restart: how long until /health/ready, and how long the hub itself says recovery took.</summary>
public sealed record Restart(string Case, double ReadySeconds, double RecoverySeconds, long ReplayedEvents, long ReplayedCommands, double ReplaySeconds)
{
    /// <summary>Replayed journal records (ledger rows) per second of replay.</summary>
    public double EventsPerSecond => ReplaySeconds > 0 ? ReplayedEvents / ReplaySeconds : double.NaN;
}

/// <summary>
/// Restart time of a hub with a large journal, made through the hub's own HTTP API with batches of
/// 1,000 events. Three restarts: from the shutdown snapshot alone, from that snapshot plus a tail
/// journaled after it (the process is then killed, so no new snapshot is written), and from the
/// journal alone after the snapshots are deleted. A journal record here is one decided event: one
/// ledger row, and one entry of the batch command that replay decides again.
/// </summary>
public sealed class RecoveryScenario(string hubDll, string workDir)
{
    private const int LocationCount = 20;
    private const int EventsPerPosition = 10;

    /// <summary>The locations of the recovery journal's events; a hub whose journal is reused must have them declared.</summary>
    public static readonly string[] Locations =
        [.. Enumerable.Range(1, LocationCount).Select(i => string.Create(CultureInfo.InvariantCulture, $"R{i:D2}"))];

    /// <summary>
    /// Runs the three restarts. With <paramref name="existingData"/> (the data file of a hub that was
    /// stopped gracefully, e.g. after the HTTP scenarios) no journal is generated: its mixed
    /// journal of reservations and events is replayed as it is. Otherwise
    /// <paramref name="events"/> events are journaled first.
    /// </summary>
    public async Task<(List<Restart> Restarts, object Details)> Run(int events, string? existingData)
    {
        var data = existingData ?? Path.Combine(workDir, "recovery", "hub.db");
        var positions = Math.Max(LocationCount, events / EventsPerPosition);
        var skus = positions / LocationCount;
        var locations = Locations;
        var at = new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero);
        var rng = new Random(4242);
        var next = 0;
        // Events are made batch by batch, on the sender's request, so that millions never sit in memory at once.
        (byte[] Body, int Count) Batch(int _)
        {
            var sb = new StringBuilder(200 * 1024);
            sb.Append("{\"events\":[");
            for (var i = 0; i < 1000; i++)
            {
                int n;
                DateTimeOffset when;
                int p, kind;
                lock (rng)
                {
                    n = next++;
                    at = at.AddMilliseconds(1);
                    when = at;
                    p = rng.Next(positions);
                    kind = rng.Next(10);
                }
                if (i > 0)
                {
                    sb.Append(',');
                }
                var (type, q) = kind switch { < 5 => ("received", 3), < 9 => ("sold", 1), _ => ("adjusted", 2) };
                Bodies.Event(sb, string.Create(CultureInfo.InvariantCulture, $"rc-{n}"), type,
                    string.Create(CultureInfo.InvariantCulture, $"R{p / LocationCount}"), locations[p % LocationCount], q, when);
            }
            sb.Append("]}");
            return (Bodies.Utf8(sb.ToString()), 1000);
        }

        ServerProcess hub;
        double writeSeconds = 0, stopSeconds = double.NaN;
        long written = 0;
        if (existingData is null)
        {
            Log.Line($"recovery: journaling {events:N0} events over {positions:N0} positions ({skus:N0} SKUs × {LocationCount} locations) through the HTTP API");
            hub = ServerProcess.StartHub(hubDll, data);
            await hub.WaitReady("/health/ready", TimeSpan.FromMinutes(1));
            foreach (var l in locations)
            {
                await Setup.Put(hub.Control, $"/v1/locations/{l}", Bodies.Location("warehouse"));
            }
            (writeSeconds, written) = await Setup.PostBatches(hub.Control, new LazyBatches(events / 1000, Batch), 4, "recovery journal");
            Log.Line($"recovery: journaled {written:N0} events in {writeSeconds:F1} s ({written / writeSeconds:N0}/s); stopping the hub gracefully (it writes a snapshot)");
            stopSeconds = (await hub.StopGracefully(TimeSpan.FromMinutes(5))).TotalSeconds;
            await hub.DisposeAsync();
        }
        else
        {
            Log.Line($"recovery: using the journal of the HTTP scenarios' hub ({data}), stopped gracefully with a snapshot");
        }
        var (commands, ledger) = Counts(data);
        if (existingData is null)
        {
            Log.Line($"recovery: shutdown with snapshot took {stopSeconds:F1} s");
        }
        // The tail is a tenth of the journal, in whole batches.
        var tail = (int)Math.Max(1000, Math.Min(int.MaxValue, ledger / 10) / 1000 * 1000);
        var snapshotBytes = SnapshotBytes(data);
        Log.Line($"recovery: journal holds {commands:N0} commands and {ledger:N0} ledger rows; snapshot {Fmt.Mb(snapshotBytes)} gzip");

        var restarts = new List<Restart>();
        hub = ServerProcess.StartHub(hubDll, data);
        restarts.Add(await Measure(hub, "snapshot, no tail", 0, 0));
        var (_, tailWritten) = await Setup.PostBatches(hub.Control, new LazyBatches(tail / 1000, Batch), 4, "recovery tail");
        // SIGKILL: no shutdown snapshot, so the next start must replay the tail after the snapshot.
        hub.Kill();
        await hub.DisposeAsync();
        hub = ServerProcess.StartHub(hubDll, data);
        restarts.Add(await Measure(hub, "snapshot + tail", tailWritten, Counts(data).Commands - commands, restarts[0].RecoverySeconds));
        hub.Kill();
        await hub.DisposeAsync();

        var deleted = DeleteSnapshots(data);
        var (allCommands, allLedger) = Counts(data);
        Log.Line($"recovery: deleted {deleted} snapshot(s); restarting from the journal alone ({allCommands:N0} commands, {allLedger:N0} ledger rows)");
        hub = ServerProcess.StartHub(hubDll, data);
        restarts.Add(await Measure(hub, "no snapshot (journal only)", allLedger, allCommands));
        var rss = ProcStats.PeakRssBytes(hub.Pid);
        // Nothing runs after this start, so a shutdown snapshot would only cost time.
        hub.Kill();
        await hub.DisposeAsync();
        var details = new
        {
            journal = existingData is null ? "generated: batches of 1,000 received / sold / adjusted events" : "the HTTP scenarios' hub: flash sale, uniform seed and reservations, ingestion",
            generatedEvents = existingData is null ? events : 0,
            generatedPositions = existingData is null ? positions : 0,
            writeSeconds,
            writeEventsPerSecond = writeSeconds > 0 ? written / writeSeconds : 0,
            shutdownWithSnapshotSeconds = stopSeconds,
            snapshotGzipBytes = snapshotBytes,
            journalCommands = allCommands,
            journalLedgerRows = allLedger,
            peakRssAfterFullReplayBytes = rss,
            restarts,
        };
        return (restarts, details);
    }

    /// <param name="snapshotSeconds">Recovery time of the same snapshot without a tail, subtracted to get the replay time of the tail alone.</param>
    private static async Task<Restart> Measure(ServerProcess hub, string name, long replayedEvents, long replayedCommands, double snapshotSeconds = 0)
    {
        var ready = await hub.WaitReady("/health/ready", TimeSpan.FromMinutes(5));
        var recovery = (await HubMetricsScrape.Read(hub.Control)).Get("truestock_recovery_seconds");
        var restart = new Restart(name, ready.TotalSeconds, recovery, replayedEvents, replayedCommands, recovery - snapshotSeconds);
        foreach (var line in hub.TakeNotable())
        {
            Log.Line($"  hub said: {line}");
        }
        Log.Line($"recovery: {name}: ready {ready.TotalSeconds:F2} s after start, recovery {recovery:F2} s" +
            (replayedEvents > 0 ? $", {restart.EventsPerSecond:N0} events/s replayed" : ""));
        return restart;
    }

    private static SqliteConnection Open(string path)
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        c.Open();
        return c;
    }

    private static (long Commands, long Ledger) Counts(string path)
    {
        using var c = Open(path);
        return (Scalar(c, "SELECT COUNT(*) FROM commands"), Scalar(c, "SELECT COUNT(*) FROM ledger"));
    }

    private static long SnapshotBytes(string path)
    {
        using var c = Open(path);
        return Scalar(c, "SELECT COALESCE(MAX(length(data)), 0) FROM snapshots");
    }

    private static long DeleteSnapshots(string path)
    {
        using var c = Open(path);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "DELETE FROM snapshots";
        return cmd.ExecuteNonQuery();
    }

    private static long Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}
