using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Truestock.Bench;

/// <summary>
/// The baseline: inventory done the common way, as a small HTTP server with the same request
/// shapes as the hub. Every write request is one SQLite transaction on the same file settings as
/// the hub's journal (WAL, synchronous=FULL, so every commit is fsync'd), and a reservation takes
/// stock with a conditional row update:
/// <c>UPDATE stock SET reserved = reserved + @q WHERE sku=@s AND loc=@l AND on_hand - reserved - damaged >= @q</c>,
/// then inserts the reservation row, then commits.
/// SQLite has no row locks: its write lock covers the whole file. Writers here queue on an
/// in-process semaphore for it instead of spinning in SQLite's busy handler (which sleeps
/// between retries); that is the fastest way to run this design on SQLite, so the comparison
/// is fair to the baseline. Reads use pooled connections and run in parallel (WAL readers).
/// Semantics are deliberately simpler than the hub's (no count ordering, no channel buffers or
/// allocation percentages, no ledger rows for reservations), so the baseline does less work per request.
/// </summary>
public static class BaselineServer
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<int> Run(string[] args)
    {
        var port = int.Parse(Arg(args, "--port") ?? throw new ArgumentException("--port is required"), CultureInfo.InvariantCulture);
        var data = Arg(args, "--data") ?? throw new ArgumentException("--data is required");
        using var store = new BaselineStore(data);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();

        app.MapGet("/health/ready", () => Results.Ok(new { status = "ready" }));
        app.MapPut("/v1/locations/{id}", (string id) => store.PutLocation(id));
        app.MapPut("/v1/channels/{id}", async (string id, HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<ChannelBody>(request.Body, Json);
            return body is null ? Results.BadRequest() : await store.PutChannel(id, body.Locations);
        });
        app.MapPost("/v1/events", async (HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<EventsBody>(request.Body, Json);
            return body?.Events is null ? Results.BadRequest() : await store.ApplyEvents(body.Events);
        });
        app.MapPost("/v1/reservations", async (HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<ReservationBody>(request.Body, Json);
            return body?.Lines is null ? Results.BadRequest() : await store.Reserve(body);
        });
        app.MapPost("/v1/reservations/{id}/commit", (string id) => store.Transition(id, commit: true));
        app.MapPost("/v1/reservations/{id}/release", (string id) => store.Transition(id, commit: false));
        app.MapGet("/v1/availability/{sku}", (string sku) => store.Availability(sku));
        app.MapGet("/v1/channels/{id}/availability", (string id, HttpRequest request) =>
            store.ChannelAvailability(id, request.Query["sku"].Where(s => s is not null).Select(s => s!).ToArray()));
        await app.RunAsync();
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public sealed record ChannelBody(string? Name, string[] Locations);

    public sealed record EventBody(string EventId, string Type, string Sku, string LocationId, long Quantity, string OccurredAt, string Source);

    public sealed record EventsBody(EventBody[] Events);

    public sealed record LineBody(string Sku, long Quantity, string? LocationId);

    public sealed record ReservationBody(string ReservationId, string ChannelId, int? TtlSeconds, LineBody[] Lines);
}

/// <summary>The baseline's tables and statements; one writer connection, serialised by a semaphore.</summary>
internal sealed class BaselineStore : IDisposable
{
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly SqliteConnection _writer;
    private readonly string _readerConnectionString;
    private readonly ConcurrentDictionary<string, string[]> _channels = new(StringComparer.Ordinal);
    private readonly SqliteCommand _reserve;
    private readonly SqliteCommand _insertReservation;
    private readonly SqliteCommand _insertLine;
    private readonly SqliteCommand _status;
    private readonly SqliteCommand _setStatus;
    private readonly SqliteCommand _lines;
    private readonly SqliteCommand _unreserve;
    private readonly SqliteCommand _insertEventId;
    private readonly SqliteCommand _addOnHand;
    private readonly SqliteCommand _setOnHand;
    private readonly SqliteCommand _addDamaged;
    private readonly SqliteCommand _insertLedger;

    public BaselineStore(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var cs = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 60 };
        _readerConnectionString = cs.ToString();
        _writer = new SqliteConnection(_readerConnectionString);
        _writer.Open();
        // The same settings as the hub's journal: WAL, and FULL so that every commit is fsync'd.
        Exec(_writer, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=60000;");
        Exec(_writer, """
            CREATE TABLE IF NOT EXISTS locations (id TEXT NOT NULL PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS channels (id TEXT NOT NULL PRIMARY KEY, locations TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS stock (
                sku TEXT NOT NULL, loc TEXT NOT NULL,
                on_hand INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0, damaged INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (sku, loc));
            CREATE TABLE IF NOT EXISTS reservations (
                id TEXT NOT NULL PRIMARY KEY, channel TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS reservation_lines (
                reservation_id TEXT NOT NULL, line_no INTEGER NOT NULL, sku TEXT NOT NULL, loc TEXT NOT NULL, quantity INTEGER NOT NULL,
                PRIMARY KEY (reservation_id, line_no));
            CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT NOT NULL PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS ledger (
                id INTEGER PRIMARY KEY, sku TEXT NOT NULL, loc TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
                quantity INTEGER NOT NULL, occurred_at TEXT NOT NULL, on_hand_after INTEGER NOT NULL);
            """);
        _reserve = Prepare("UPDATE stock SET reserved = reserved + @q WHERE sku = @s AND loc = @l AND on_hand - reserved - damaged >= @q", "@q", "@s", "@l");
        _insertReservation = Prepare("INSERT INTO reservations (id, channel, status, created_at, expires_at) VALUES (@id, @c, 'held', @t, @e)", "@id", "@c", "@t", "@e");
        _insertLine = Prepare("INSERT INTO reservation_lines (reservation_id, line_no, sku, loc, quantity) VALUES (@id, @n, @s, @l, @q)", "@id", "@n", "@s", "@l", "@q");
        _status = Prepare("SELECT status FROM reservations WHERE id = @id", "@id");
        _setStatus = Prepare("UPDATE reservations SET status = @st WHERE id = @id", "@st", "@id");
        _lines = Prepare("SELECT sku, loc, quantity FROM reservation_lines WHERE reservation_id = @id ORDER BY line_no", "@id");
        _unreserve = Prepare("UPDATE stock SET reserved = reserved - @q WHERE sku = @s AND loc = @l", "@q", "@s", "@l");
        _insertEventId = Prepare("INSERT OR IGNORE INTO event_ids (event_id) VALUES (@id)", "@id");
        _addOnHand = Prepare("INSERT INTO stock (sku, loc, on_hand) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET on_hand = on_hand + @q RETURNING on_hand", "@s", "@l", "@q");
        _setOnHand = Prepare("INSERT INTO stock (sku, loc, on_hand) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET on_hand = @q RETURNING on_hand", "@s", "@l", "@q");
        _addDamaged = Prepare("INSERT INTO stock (sku, loc, damaged) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET damaged = damaged + @q RETURNING on_hand", "@s", "@l", "@q");
        _insertLedger = Prepare("INSERT INTO ledger (sku, loc, event_id, type, quantity, occurred_at, on_hand_after) VALUES (@s, @l, @id, @t, @q, @at, @after)",
            "@s", "@l", "@id", "@t", "@q", "@at", "@after");
        using var load = _writer.CreateCommand();
        load.CommandText = "SELECT id, locations FROM channels";
        using var r = load.ExecuteReader();
        while (r.Read())
        {
            _channels[r.GetString(0)] = r.GetString(1).Split(',');
        }
    }

    public async Task<IResult> PutLocation(string id) =>
        await Write(tx =>
        {
            using var cmd = _writer.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT OR IGNORE INTO locations (id) VALUES (@id)";
            cmd.Parameters.AddWithValue("@id", id);
            cmd.ExecuteNonQuery();
            return Results.Ok(new { locationId = id });
        });

    public async Task<IResult> PutChannel(string id, string[] locations) =>
        await Write(tx =>
        {
            using var cmd = _writer.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO channels (id, locations) VALUES (@id, @l) ON CONFLICT (id) DO UPDATE SET locations = @l";
            cmd.Parameters.AddWithValue("@id", id);
            cmd.Parameters.AddWithValue("@l", string.Join(',', locations));
            cmd.ExecuteNonQuery();
            _channels[id] = locations;
            return Results.Ok(new { channelId = id, locations });
        });

    /// <summary>One transaction for the whole request: each event is deduplicated by id, applied with an upsert, and written to the ledger.</summary>
    public async Task<IResult> ApplyEvents(BaselineServer.EventBody[] events) =>
        await Write(tx =>
        {
            var results = new object[events.Length];
            for (var i = 0; i < events.Length; i++)
            {
                var e = events[i];
                if (Run(_insertEventId, tx, e.EventId) == 0)
                {
                    results[i] = new { eventId = e.EventId, status = "duplicate" };
                    continue;
                }
                var (statement, q) = e.Type switch
                {
                    "received" or "return_received" or "adjusted" or "transfer_received" => (_addOnHand, e.Quantity),
                    "sold" or "shipped" or "transfer_shipped" or "written_off" => (_addOnHand, -e.Quantity),
                    "counted" => (_setOnHand, e.Quantity),
                    "damaged" => (_addDamaged, e.Quantity),
                    _ => (_addOnHand, 0L),
                };
                Bind(statement, tx, e.Sku, e.LocationId, q);
                var after = Convert.ToInt64(statement.ExecuteScalar(), CultureInfo.InvariantCulture);
                Run(_insertLedger, tx, e.Sku, e.LocationId, e.EventId, e.Type, e.Quantity, e.OccurredAt, after);
                results[i] = new { eventId = e.EventId, status = "applied" };
            }
            return Results.Ok(new { results });
        });

    /// <summary>All-or-nothing: each line takes the first sourcing location whose conditional update succeeds.</summary>
    public async Task<IResult> Reserve(BaselineServer.ReservationBody body)
    {
        if (!_channels.TryGetValue(body.ChannelId, out var sourcing))
        {
            return Results.UnprocessableEntity(new { type = "unknown-channel" });
        }
        var now = DateTimeOffset.UtcNow;
        return await Write(tx =>
        {
            var taken = new (string Loc, long Q)[body.Lines.Length];
            for (var i = 0; i < body.Lines.Length; i++)
            {
                var line = body.Lines[i];
                string? chosen = null;
                foreach (var loc in line.LocationId is null ? sourcing : [line.LocationId])
                {
                    if (Run(_reserve, tx, line.Quantity, line.Sku, loc) == 1)
                    {
                        chosen = loc;
                        break;
                    }
                }
                if (chosen is null)
                {
                    tx.Rollback();
                    return Results.Conflict(new { type = "insufficient-stock", sku = line.Sku });
                }
                taken[i] = (chosen, line.Quantity);
            }
            try
            {
                Run(_insertReservation, tx, body.ReservationId, body.ChannelId, now.ToString("O", CultureInfo.InvariantCulture),
                    now.AddSeconds(body.TtlSeconds ?? 900).ToString("O", CultureInfo.InvariantCulture));
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
            {
                // The id exists: the same request again (idempotency by primary key).
                tx.Rollback();
                return Results.Ok(new { reservationId = body.ReservationId, status = "existing" });
            }
            for (var i = 0; i < taken.Length; i++)
            {
                Run(_insertLine, tx, body.ReservationId, i, body.Lines[i].Sku, taken[i].Loc, taken[i].Q);
            }
            return Results.Json(new
            {
                reservationId = body.ReservationId,
                status = "held",
                channelId = body.ChannelId,
                lines = body.Lines.Select((l, i) => new { sku = l.Sku, quantity = l.Quantity, locationId = taken[i].Loc }),
            }, statusCode: 201);
        });
    }

    /// <summary>
    /// Commit marks the reservation committed (its units stay counted in reserved); release gives
    /// the units back with the reverse row update.
    /// </summary>
    public async Task<IResult> Transition(string id, bool commit) =>
        await Write(tx =>
        {
            _status.Transaction = tx;
            _status.Parameters[0].Value = id;
            var status = _status.ExecuteScalar() as string;
            if (status is null)
            {
                return Results.NotFound(new { type = "unknown-reservation" });
            }
            var target = commit ? "committed" : "released";
            if (status == target)
            {
                return Results.Ok(new { reservationId = id, status });
            }
            if (status == "released" || (commit && status != "held"))
            {
                return Results.Conflict(new { type = "illegal-state", status });
            }
            if (!commit)
            {
                var lines = new List<(string Sku, string Loc, long Q)>();
                _lines.Transaction = tx;
                _lines.Parameters[0].Value = id;
                using (var r = _lines.ExecuteReader())
                {
                    while (r.Read())
                    {
                        lines.Add((r.GetString(0), r.GetString(1), r.GetInt64(2)));
                    }
                }
                foreach (var (sku, loc, q) in lines)
                {
                    Run(_unreserve, tx, q, sku, loc);
                }
            }
            Run(_setStatus, tx, target, id);
            return Results.Ok(new { reservationId = id, status = target });
        });

    public IResult Availability(string sku)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT loc, on_hand, reserved, damaged FROM stock WHERE sku = @s ORDER BY loc";
        cmd.Parameters.AddWithValue("@s", sku);
        var locations = new List<object>();
        var available = new Dictionary<string, long>(StringComparer.Ordinal);
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var (loc, onHand, reserved, damaged) = (r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
                available[loc] = onHand - reserved - damaged;
                locations.Add(new { locationId = loc, onHand, reserved, damaged, available = onHand - reserved - damaged });
            }
        }
        var channels = _channels.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new { channelId = kv.Key, available = kv.Value.Sum(l => Math.Max(0, available.GetValueOrDefault(l))) });
        return Results.Ok(new { sku, locations, channels });
    }

    public IResult ChannelAvailability(string channelId, string[] skus)
    {
        if (!_channels.TryGetValue(channelId, out var sourcing))
        {
            return Results.NotFound(new { type = "unknown-channel" });
        }
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        // One statement for the whole list: the SKUs travel as one JSON array parameter.
        cmd.CommandText = "SELECT sku, loc, on_hand - reserved - damaged FROM stock WHERE sku IN (SELECT value FROM json_each(@skus))";
        cmd.Parameters.AddWithValue("@skus", JsonSerializer.Serialize(skus));
        var pool = new Dictionary<string, long>(StringComparer.Ordinal);
        var inChannel = new HashSet<string>(sourcing, StringComparer.Ordinal);
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                if (inChannel.Contains(r.GetString(1)))
                {
                    var sku = r.GetString(0);
                    pool[sku] = pool.GetValueOrDefault(sku) + Math.Max(0, r.GetInt64(2));
                }
            }
        }
        return Results.Ok(new { channelId, items = skus.Select(s => new { sku = s, available = pool.GetValueOrDefault(s) }) });
    }

    public void Dispose()
    {
        foreach (var cmd in new[] { _reserve, _insertReservation, _insertLine, _status, _setStatus, _lines, _unreserve, _insertEventId, _addOnHand, _setOnHand, _addDamaged, _insertLedger })
        {
            cmd.Dispose();
        }
        _writer.Dispose();
        _write.Dispose();
    }

    /// <summary>Runs <paramref name="work"/> in one write transaction and commits it unless it rolled back.</summary>
    private async Task<IResult> Write(Func<SqliteTransaction, IResult> work)
    {
        await _write.WaitAsync();
        try
        {
            using var tx = _writer.BeginTransaction();
            var result = work(tx);
            if (tx.Connection is not null)
            {
                tx.Commit();
            }
            return result;
        }
        finally
        {
            _write.Release();
        }
    }

    private SqliteConnection OpenReader()
    {
        var c = new SqliteConnection(_readerConnectionString);
        c.Open();
        return c;
    }

    private SqliteCommand Prepare(string sql, params string[] names)
    {
        var cmd = _writer.CreateCommand();
        cmd.CommandText = sql;
        foreach (var n in names)
        {
            cmd.Parameters.Add(new SqliteParameter(n, null));
        }
        cmd.Prepare();
        return cmd;
    }

    private static void Bind(SqliteCommand cmd, SqliteTransaction tx, params object[] values)
    {
        cmd.Transaction = tx;
        for (var i = 0; i < values.Length; i++)
        {
            cmd.Parameters[i].Value = values[i];
        }
    }

    private static int Run(SqliteCommand cmd, SqliteTransaction tx, params object[] values)
    {
        Bind(cmd, tx, values);
        return cmd.ExecuteNonQuery();
    }

    private static void Exec(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
