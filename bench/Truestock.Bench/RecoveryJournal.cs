using System.Diagnostics;
using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Truestock.Core;
using Truestock.Server;
using Truestock.Server.Http;

namespace Truestock.Bench;

/// <summary>The recovery journal of this run: where it is, and how it was made.</summary>
/// <param name="DataPath">The scratch copy the restarts use (they change it).</param>
/// <param name="CachePath">The cached original under artifacts/bench/cache.</param>
/// <param name="Built">True when this run generated it; false when it came from the cache.</param>
/// <param name="BuildSeconds">Generation time (0 when cached).</param>
/// <param name="CopySeconds">Time to copy the cached file to the scratch folder.</param>
public sealed record RecoveryJournalInfo(
    string DataPath, string CachePath, bool Built, double BuildSeconds, double CopySeconds, long FileBytes,
    long Records, long EventRecords, long Holds, int Positions, int Days, long ScratchFreeBytes, long CacheFreeBytes);

/// <summary>
/// Makes the recovery scenario's journal: a genuine hub journal of a given number of ledger
/// records, written by the hub's own code in this process. Events go through
/// <c>EventEndpoints.Create</c> and <c>EventEndpoints.Apply</c> and reservations through
/// <c>ReservationEndpoints.SubmitCreate</c> / <c>SubmitTransition</c> — the functions every way in
/// (HTTP, broker, files, webhooks) calls after parsing — into the hub's sequencer and SQLite journal,
/// so only Kestrel and JSON request parsing are skipped. That is what makes 10 million records
/// affordable: the HTTP API takes about 15,000 events/s, a quarter of an hour for 10 million.
/// The result is cached under artifacts/bench/cache, keyed by <see cref="GeneratorVersion"/>, the
/// size and a hash of the hub's SQLite schema script, so one full run builds it and later runs copy it.
/// <para>
/// The journal covers <see cref="DayCount"/> days of a simulated clock (the hub's injectable
/// <see cref="TimeProvider"/>, as its tests use): each day's commands are decided at that day's
/// time, so the hub prunes event ids older than its 30-day retention once a simulated day, as it
/// would in production. Without that, all 10 million event ids would stay remembered and the snapshot
/// JSON would outgrow the 2 GB that one byte array can hold.
/// </para>
/// <para>
/// Content: every position is first stocked with one <c>received</c> event (in scattered order),
/// then random positions get received / sold / adjusted events in batches of 1,000 (one command
/// each); after the stocking, <see cref="HoldRecordShare"/> of the records are single-unit
/// reservations, each held and then committed (one in five) or released, one command each. A
/// record is one ledger row: one per event, one per hold, one per commit or release.
/// </para>
/// </summary>
public static class RecoveryJournal
{
    /// <summary>Bump whenever the generated content changes, so that caches of older generators are rebuilt.</summary>
    private const int GeneratorVersion = 1;

    private const int LocationCount = 20;
    private const int DayCount = 100;
    private const int EventsPerCommand = 1000;
    private const long SeedUnits = 1000;
    private const double HoldRecordShare = 0.05;
    private const int EventSenders = 4;
    private const int ReservationClients = 256;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(10);

    /// <summary>The first day of the simulated journal; the whole journal lies in the past of any real run.</summary>
    private static readonly DateTimeOffset Day0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Each day's feed arrives (is decided) this long after midnight; its events happened before.</summary>
    private static readonly TimeSpan ArrivalAfterMidnight = TimeSpan.FromHours(1);

    /// <summary>The day after the journal's last simulated day: later events (the tail) are dated from here.</summary>
    public static DateTimeOffset End => Day0.AddDays(DayCount);

    /// <summary>The locations of the journal's positions; the tail posted over HTTP uses the same ones.</summary>
    public static readonly string[] Locations =
        [.. Enumerable.Range(1, LocationCount).Select(i => string.Create(CultureInfo.InvariantCulture, $"R{i:D2}"))];

    public static string Sku(int position) => string.Create(CultureInfo.InvariantCulture, $"R{position / LocationCount}");

    public static string Location(int position) => Locations[position % LocationCount];

    /// <summary>
    /// Returns a scratch copy of the cached journal of <paramref name="records"/> records over
    /// <paramref name="skus"/> × 20 positions, building the cache first when it is missing.
    /// </summary>
    public static async Task<RecoveryJournalInfo> Prepare(long records, int skus, string cacheDir, string scratchPath)
    {
        var plan = new Plan(records, skus);
        Directory.CreateDirectory(cacheDir);
        Directory.CreateDirectory(Path.GetDirectoryName(scratchPath)!);
        var cachePath = Path.Combine(cacheDir, $"recovery-{records}-{skus}-g{GeneratorVersion}-{SchemaHash()}.db");
        double buildSeconds = 0;
        var built = !File.Exists(cachePath);
        if (built)
        {
            RemoveStale(cacheDir, cachePath);
            RequireFreeSpace(cacheDir, plan.EstimatedBytes, "build the recovery journal");
            var building = cachePath + ".building";
            Delete(building);
            var watch = Stopwatch.StartNew();
            await Build(plan, building);
            Checkpoint(building);
            File.Move(building, cachePath);
            buildSeconds = watch.Elapsed.TotalSeconds;
            Log.Line($"recovery journal: built {cachePath} ({Fmt.Mb(new FileInfo(cachePath).Length)}) in {buildSeconds:F0} s; later runs copy it");
        }
        else
        {
            Log.Line($"recovery journal: using the cached {cachePath} ({Fmt.Mb(new FileInfo(cachePath).Length)})");
        }
        var bytes = new FileInfo(cachePath).Length;
        RequireFreeSpace(Path.GetDirectoryName(scratchPath)!, bytes, "copy the recovery journal");
        var copy = Stopwatch.StartNew();
        await CopyWithProgress(cachePath, scratchPath);
        var copySeconds = copy.Elapsed.TotalSeconds;
        var scratchFree = new DriveInfo(Path.GetFullPath(scratchPath)).AvailableFreeSpace;
        var cacheFree = new DriveInfo(Path.GetFullPath(cachePath)).AvailableFreeSpace;
        Log.Line($"recovery journal: copied to the scratch folder in {copySeconds:F1} s; free space: scratch {Fmt.Mb(scratchFree)}, cache {Fmt.Mb(cacheFree)}");
        return new RecoveryJournalInfo(scratchPath, cachePath, built, buildSeconds, copySeconds, bytes, plan.Records, plan.Events, plan.Holds,
            plan.Positions, DayCount, scratchFree, cacheFree);
    }

    /// <summary>
    /// A hash of the schema script the hub applies to a new SQLite file: when the journal's tables
    /// change, the cached file is of an older schema and is rebuilt rather than migrated on start
    /// (a migration would be measured as part of the restart).
    /// </summary>
    private static string SchemaHash() =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(HubApp.MigrationScript("sqlite"))))[..12];

    /// <summary>Deletes recovery journals of other keys and half-built ones, so the cache holds one journal per size.</summary>
    private static void RemoveStale(string cacheDir, string keep)
    {
        var prefix = Path.GetFileName(keep)[..(Path.GetFileName(keep).IndexOf("-g", StringComparison.Ordinal) + 1)];
        foreach (var file in Directory.EnumerateFiles(cacheDir, "recovery-*"))
        {
            if (Path.GetFileName(file).StartsWith(prefix, StringComparison.Ordinal) && file != keep)
            {
                Log.Line($"recovery journal: deleting the outdated {file}");
                Delete(file);
            }
        }
    }

    private static void RequireFreeSpace(string dir, long bytes, string purpose)
    {
        var free = new DriveInfo(Path.GetFullPath(dir)).AvailableFreeSpace;
        // A margin for the WAL and the snapshots the restarts add.
        var needed = bytes + bytes / 4;
        if (free < needed)
        {
            throw new IOException($"Not enough disk space to {purpose}: {Fmt.Mb(free)} free in {dir}, about {Fmt.Mb(needed)} needed.");
        }
    }

    /// <summary>Deletes a database file with its WAL, shared-memory and writer-lock files (the hub leaves the lock file behind when it stops).</summary>
    private static void Delete(string path)
    {
        foreach (var f in new[] { path, path + "-wal", path + "-shm", path + ".lock" })
        {
            File.Delete(f);
        }
    }

    /// <summary>Folds the WAL into the file and drops the generator's shutdown snapshot, so the cache is one self-contained file.</summary>
    private static void Checkpoint(string path)
    {
        // The hub's connections may sit in Microsoft.Data.Sqlite's pool, keeping the WAL open.
        SqliteConnection.ClearAllPools();
        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            // Each run's hub writes its own snapshot, so that a cached file never depends on the snapshot format.
            cmd.CommandText = "DELETE FROM snapshots; PRAGMA wal_checkpoint(TRUNCATE);";
            cmd.ExecuteNonQuery();
        }
        foreach (var f in new[] { path + "-wal", path + "-shm" })
        {
            if (File.Exists(f) && new FileInfo(f).Length > 0)
            {
                throw new InvalidOperationException($"{f} is not empty after the checkpoint; the cached journal would be incomplete.");
            }
            File.Delete(f);
        }
        File.Delete(path + ".lock");
    }

    private static async Task CopyWithProgress(string from, string to)
    {
        Delete(to);
        const int bufferBytes = 4 * 1024 * 1024;
        await using var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read, bufferBytes, FileOptions.SequentialScan);
        await using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferBytes);
        var buffer = new byte[bufferBytes];
        var watch = Stopwatch.StartNew();
        var lastLog = TimeSpan.Zero;
        long copied = 0;
        int read;
        while ((read = await input.ReadAsync(buffer)) > 0)
        {
            await output.WriteAsync(buffer.AsMemory(0, read));
            copied += read;
            if (watch.Elapsed - lastLog > ProgressInterval)
            {
                lastLog = watch.Elapsed;
                Log.Line($"  recovery journal: copied {Fmt.Mb(copied)} of {Fmt.Mb(input.Length)}");
            }
        }
    }

    /// <summary>What the journal holds, derived from the requested size; the same numbers for the same size, always.</summary>
    private sealed class Plan
    {
        public Plan(long records, int skus)
        {
            Records = records;
            Positions = skus * LocationCount;
            // 7919 is prime, so stepping by it visits every position once as long as it does not divide the count.
            if (Positions % 7919 == 0 || Positions < EventsPerCommand)
            {
                throw new ArgumentOutOfRangeException(nameof(skus), $"{Positions} positions do not suit the generator.");
            }
            Holds = (long)(records * HoldRecordShare / 2);
            Events = records - 2 * Holds;
            if (Events < Positions)
            {
                throw new ArgumentOutOfRangeException(nameof(records), $"{records} records cannot stock {Positions} positions.");
            }
            EventCommands = (Events + EventsPerCommand - 1) / EventsPerCommand;
            // Holds start the day after every position is stocked, so none is refused for want of stock.
            StockedDay = DayOf(Positions - 1) + 1;
            if (StockedDay >= DayCount)
            {
                throw new ArgumentOutOfRangeException(nameof(records), "Stocking the positions would take every simulated day.");
            }
        }

        public long Records { get; }
        public int Positions { get; }
        public long Events { get; }
        public long Holds { get; }
        public long EventCommands { get; }
        public int StockedDay { get; }

        /// <summary>About 900 bytes per record in SQLite (ledger row and its indexes, event id, payload), measured on earlier runs.</summary>
        public long EstimatedBytes => Records * 900;

        public long FirstCommand(int day) => EventCommands * day / DayCount;

        public long FirstHold(int day) => day <= StockedDay ? 0 : Holds * (day - StockedDay) / (DayCount - StockedDay);

        private int DayOf(long eventIndex)
        {
            var command = eventIndex / EventsPerCommand;
            var day = 0;
            while (day + 1 < DayCount && FirstCommand(day + 1) <= command)
            {
                day++;
            }
            return day;
        }
    }

    /// <summary>
    /// The hub's clock during generation: a simulated day's time while that day's commands are
    /// decided, moving on with real time within the day so that decision times still increase.
    /// </summary>
    private sealed class JournalClock : TimeProvider
    {
        private long _dayTicks = Day0.UtcTicks;
        private long _dayStartedAt = Stopwatch.GetTimestamp();

        public void StartDay(DateTimeOffset at)
        {
            Interlocked.Exchange(ref _dayStartedAt, Stopwatch.GetTimestamp());
            Interlocked.Exchange(ref _dayTicks, at.UtcTicks);
        }

        public override DateTimeOffset GetUtcNow()
        {
            var within = Stopwatch.GetElapsedTime(Interlocked.Read(ref _dayStartedAt));
            return new DateTimeOffset(Interlocked.Read(ref _dayTicks), TimeSpan.Zero) + (within < TimeSpan.FromHours(1) ? within : TimeSpan.FromHours(1));
        }
    }

    private static async Task Build(Plan plan, string dataPath)
    {
        Log.Line($"recovery journal: generating {plan.Records:N0} ledger records ({plan.Events:N0} events in batches of {EventsPerCommand:N0}, " +
            $"{plan.Holds:N0} single-unit holds each committed or released) over {plan.Positions:N0} positions and {DayCount} simulated days, " +
            "through the hub's own write path in this process; this is done once and cached");
        var clock = new JournalClock();
        clock.StartDay(Day0);
        var app = HubApp.Build([
            "--urls", "http://127.0.0.1:0", $"--Truestock:DataPath={dataPath}", "--Logging:LogLevel:Default=Warning",
            // No periodic snapshots while generating: the restarts make their own.
            $"--Truestock:SnapshotEveryCommands={int.MaxValue}",
        ], clock);
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using (var http = new HttpClient { BaseAddress = new Uri(address) })
            {
                foreach (var l in Locations)
                {
                    await Setup.Put(http, $"/v1/locations/{l}", Bodies.Location("warehouse"));
                }
                await Setup.Put(http, "/v1/channels/web", Bodies.Channel(Locations));
            }
            var hub = new WritePath(app.Services);
            var watch = Stopwatch.StartNew();
            var lastLog = TimeSpan.Zero;
            long eventsDone = 0, holdsDone = 0;
            for (var day = 0; day < DayCount; day++)
            {
                var dayStart = Day0.AddDays(day);
                clock.StartDay(dayStart + ArrivalAfterMidnight);
                var (commandFrom, commandTo) = (plan.FirstCommand(day), day + 1 < DayCount ? plan.FirstCommand(day + 1) : plan.EventCommands);
                var (holdFrom, holdTo) = (plan.FirstHold(day), day + 1 < DayCount ? plan.FirstHold(day + 1) : plan.Holds);
                var firstEvent = commandFrom * EventsPerCommand;
                var dayEvents = Math.Min(plan.Events, commandTo * EventsPerCommand) - firstEvent;
                // The day's events happened in the hour before the feed arrives, in index order.
                var spacing = ArrivalAfterMidnight / Math.Max(1, dayEvents);
                var nextCommand = commandFrom - 1;
                var nextHold = holdFrom - 1;
                var senders = LoadRun.Workers(EventSenders, async _ =>
                {
                    long c;
                    while ((c = Interlocked.Increment(ref nextCommand)) < commandTo)
                    {
                        var from = c * EventsPerCommand;
                        var to = Math.Min(plan.Events, from + EventsPerCommand);
                        var events = new List<StockEvent>((int)(to - from));
                        var correlation = string.Create(CultureInfo.InvariantCulture, $"rj-c{c}");
                        for (var n = from; n < to; n++)
                        {
                            events.Add(Event(hub, plan, n, dayStart + spacing * (n - firstEvent), correlation));
                        }
                        var outcomes = await hub.ApplyEvents(events);
                        var refused = Array.FindIndex(outcomes, o => o.Status != EventStatus.Applied);
                        if (refused >= 0)
                        {
                            throw new InvalidOperationException($"Generated event {events[refused].EventId} was not applied: {outcomes[refused]}.");
                        }
                        Interlocked.Add(ref eventsDone, to - from);
                    }
                });
                var clients = LoadRun.Workers(ReservationClients, async _ =>
                {
                    long h;
                    while ((h = Interlocked.Increment(ref nextHold)) < holdTo)
                    {
                        await Hold(hub, plan, h);
                        Interlocked.Increment(ref holdsDone);
                    }
                });
                while (!Task.WhenAll(senders, clients).IsCompleted)
                {
                    await Task.WhenAny(Task.WhenAll(senders, clients), Task.Delay(ProgressInterval));
                    if (watch.Elapsed - lastLog >= ProgressInterval)
                    {
                        lastLog = watch.Elapsed;
                        var done = Interlocked.Read(ref eventsDone) + 2 * Interlocked.Read(ref holdsDone);
                        Log.Line($"  recovery journal: day {day + 1} of {DayCount}, {done:N0} of {plan.Records:N0} records ({done / watch.Elapsed.TotalSeconds:N0}/s), " +
                            $"file {Fmt.Mb(FileBytes(dataPath))}");
                    }
                }
                await Task.WhenAll(senders, clients);
            }
            Log.Line($"recovery journal: {plan.Records:N0} records journaled in {watch.Elapsed.TotalSeconds:F0} s ({plan.Records / watch.Elapsed.TotalSeconds:N0}/s); " +
                "stopping the generator's hub (it writes a shutdown snapshot, which is then dropped)");
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static long FileBytes(string path) =>
        (File.Exists(path) ? new FileInfo(path).Length : 0) + (File.Exists(path + "-wal") ? new FileInfo(path + "-wal").Length : 0);

    /// <summary>Event number <paramref name="n"/>: first a received at every position, then random received / sold / adjusted.</summary>
    private static StockEvent Event(WritePath hub, Plan plan, long n, DateTimeOffset occurredAt, string correlationId)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"rj-{n:D9}");
        if (n < plan.Positions)
        {
            var stocked = (int)(n * 7919 % plan.Positions);
            return hub.CreateEvent(id, EventType.Received, Sku(stocked), Location(stocked), SeedUnits, occurredAt, "erp", correlationId,
                null, null, null, null, Disposition.None);
        }
        var h = Mix((ulong)n);
        var p = (int)(h % (ulong)plan.Positions);
        var (type, quantity, reason) = ((h >> 40) % 10) switch
        {
            < 5 => (EventType.Received, 3L, (string?)null),
            < 9 => (EventType.Sold, 1L, null),
            _ => (EventType.Adjusted, 2L, "cycle count correction"),
        };
        return hub.CreateEvent(id, type, Sku(p), Location(p), quantity, occurredAt, "erp", correlationId, null, reason, null, null, Disposition.None);
    }

    private static async Task Hold(WritePath hub, Plan plan, long h)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"rj-h{h:D8}");
        var sku = Sku((int)(Mix((ulong)h ^ 0x5bd1e995) % (ulong)plan.Positions));
        const int ttlSeconds = Limits.TtlSecondsMax;
        var lines = new List<ReservationLineRequest> { new(sku, 1, null) };
        // The same fingerprint parts, in the same order, as ReservationEndpoints builds for POST /v1/reservations.
        var command = new CreateReservation
        {
            ReservationId = id,
            ChannelId = "web",
            TtlSeconds = ttlSeconds,
            CorrelationId = id,
            Lines = lines,
            Fingerprint = hub.Fingerprint(["web", (long)ttlSeconds, sku, 1L, null]),
        };
        var (created, _) = await hub.SubmitCreate(command);
        if (created.Result != ReservationResult.Created)
        {
            throw new InvalidOperationException($"Generated hold {id} was {created.Result}.");
        }
        var (ended, _) = await hub.SubmitTransition(h % 5 == 0 ? hub.CommitKind : hub.ReleaseKind, id, id);
        if (ended.Result != ReservationResult.Changed)
        {
            throw new InvalidOperationException($"Ending generated hold {id} was {ended.Result}.");
        }
    }

    /// <summary>SplitMix64's finaliser: a well-spread number from an index, the same on every run.</summary>
    private static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>
    /// The hub's internal write functions, found by reflection once and bound to this host's
    /// sequencer and metrics (as <see cref="DurableInProcess"/> does; an InternalsVisibleTo for the
    /// bench would make this unnecessary).
    /// </summary>
    private sealed class WritePath
    {
        private static readonly Assembly Server = typeof(HubApp).Assembly;

        public WritePath(IServiceProvider services)
        {
            var sequencerType = Server.GetType("Truestock.Server.Engine.Sequencer", throwOnError: true)!;
            var metricsType = Server.GetType("Truestock.Server.HubMetrics", throwOnError: true)!;
            var sequencer = Expression.Constant(services.GetRequiredService(sequencerType), sequencerType);
            var metrics = Expression.Constant(services.GetRequiredService(metricsType), metricsType);
            var events = Server.GetType("Truestock.Server.Http.EventEndpoints", throwOnError: true)!;
            var reservations = Server.GetType("Truestock.Server.Http.ReservationEndpoints", throwOnError: true)!;
            var kinds = Server.GetType("Truestock.Server.Engine.CommandKinds", throwOnError: true)!;
            CreateEvent = Method(events, "Create").CreateDelegate<CreateEventFunc>();
            Fingerprint = Method(Server.GetType("Truestock.Server.Http.Fingerprints", throwOnError: true)!, "Of").CreateDelegate<Func<object?[], Fingerprint>>();
            ApplyEvents = Bind<Func<List<StockEvent>, Task<EventOutcome[]>>>(Method(events, "Apply"), sequencer, metrics);
            SubmitCreate = Bind<Func<CreateReservation, Task<(ReservationOutcome, ReservationView?)>>>(Method(reservations, "SubmitCreate"), sequencer, metrics);
            SubmitTransition = Bind<Func<string, string, string, Task<(ReservationOutcome, ReservationView?)>>>(Method(reservations, "SubmitTransition"), sequencer, metrics);
            CommitKind = (string)kinds.GetField("CommitReservation")!.GetRawConstantValue()!;
            ReleaseKind = (string)kinds.GetField("ReleaseReservation")!.GetRawConstantValue()!;
        }

        public delegate StockEvent CreateEventFunc(string eventId, EventType type, string sku, string locationId, long quantity, DateTimeOffset occurredAt,
            string source, string correlationId, long? sourceSeq, string? reason, string? reservationId, string? toLocationId, Disposition disposition);

        public CreateEventFunc CreateEvent { get; }
        public Func<object?[], Fingerprint> Fingerprint { get; }
        public Func<List<StockEvent>, Task<EventOutcome[]>> ApplyEvents { get; }
        public Func<CreateReservation, Task<(ReservationOutcome, ReservationView?)>> SubmitCreate { get; }

        /// <summary>(kind, reservation id, correlation id).</summary>
        public Func<string, string, string, Task<(ReservationOutcome, ReservationView?)>> SubmitTransition { get; }

        public string CommitKind { get; }
        public string ReleaseKind { get; }

        private static MethodInfo Method(Type type, string name) =>
            type.GetMethod(name, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new MissingMethodException(type.FullName, name);

        /// <summary>Compiles <c>(args…) => method(leading…, args…)</c>.</summary>
        private static TDelegate Bind<TDelegate>(MethodInfo method, params Expression[] leading) where TDelegate : Delegate
        {
            var parameters = method.GetParameters().Skip(leading.Length).Select(p => Expression.Parameter(p.ParameterType, p.Name)).ToArray();
            return Expression.Lambda<TDelegate>(Expression.Call(method, [.. leading, .. parameters]), parameters).Compile();
        }
    }
}
