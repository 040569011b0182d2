using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Truestock.Bench;

/// <summary>One SQL statement of the baseline, with its parameter names in binding order.</summary>
internal sealed class BaselineStatement(string text, params string[] names)
{
    public string Text { get; } = text;

    public IReadOnlyList<string> Names { get; } = names;
}

/// <summary>What a write request answers, and whether its transaction is committed or rolled back.</summary>
internal readonly record struct Outcome(IResult Result, bool Commit)
{
    public static Outcome Committed(IResult result) => new(result, true);

    public static Outcome RolledBack(IResult result) => new(result, false);
}

/// <summary>
/// The baseline's tables and statements. Both stores run the same SQL text: SQLite and PostgreSQL
/// both accept <c>@name</c> parameters, <c>ON CONFLICT</c> upserts and <c>RETURNING</c>; only the
/// column types, the row lock of a transition and the bulk read differ.
/// </summary>
internal static class BaselineSql
{
    /// <summary>The tables, with the store's integer type and the ledger's generated key column.</summary>
    public static string Schema(string integer, string ledgerKey) => $"""
        CREATE TABLE IF NOT EXISTS locations (id TEXT NOT NULL PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS channels (id TEXT NOT NULL PRIMARY KEY, locations TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS stock (
            sku TEXT NOT NULL, loc TEXT NOT NULL,
            on_hand {integer} NOT NULL DEFAULT 0, reserved {integer} NOT NULL DEFAULT 0, damaged {integer} NOT NULL DEFAULT 0,
            PRIMARY KEY (sku, loc));
        CREATE TABLE IF NOT EXISTS reservations (
            id TEXT NOT NULL PRIMARY KEY, channel TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS reservation_lines (
            reservation_id TEXT NOT NULL, line_no {integer} NOT NULL, sku TEXT NOT NULL, loc TEXT NOT NULL, quantity {integer} NOT NULL,
            PRIMARY KEY (reservation_id, line_no));
        CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT NOT NULL PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS ledger (
            id {ledgerKey}, sku TEXT NOT NULL, loc TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
            quantity {integer} NOT NULL, occurred_at TEXT NOT NULL, on_hand_after {integer} NOT NULL);
        """;

    public static readonly BaselineStatement InsertLocation = new("INSERT INTO locations (id) VALUES (@id) ON CONFLICT (id) DO NOTHING", "@id");
    public static readonly BaselineStatement UpsertChannel = new("INSERT INTO channels (id, locations) VALUES (@id, @l) ON CONFLICT (id) DO UPDATE SET locations = @l", "@id", "@l");
    public static readonly BaselineStatement Channels = new("SELECT id, locations FROM channels");

    /// <summary>The conditional row update that takes stock: it changes the row only when the quantity is available.</summary>
    public static readonly BaselineStatement Reserve = new("UPDATE stock SET reserved = reserved + @q WHERE sku = @s AND loc = @l AND on_hand - reserved - damaged >= @q", "@q", "@s", "@l");

    /// <summary>Changes nothing when the id exists: the same request again (idempotency by primary key).</summary>
    public static readonly BaselineStatement InsertReservation = new(
        "INSERT INTO reservations (id, channel, status, created_at, expires_at) VALUES (@id, @c, 'held', @t, @e) ON CONFLICT (id) DO NOTHING", "@id", "@c", "@t", "@e");

    public static readonly BaselineStatement InsertLine = new("INSERT INTO reservation_lines (reservation_id, line_no, sku, loc, quantity) VALUES (@id, @n, @s, @l, @q)", "@id", "@n", "@s", "@l", "@q");
    public static readonly BaselineStatement Status = new("SELECT status FROM reservations WHERE id = @id", "@id");

    /// <summary>The status read that locks the reservation's row until the transaction ends, where the store has row locks.</summary>
    public static readonly BaselineStatement StatusForUpdate = new(Status.Text + " FOR UPDATE", "@id");

    public static readonly BaselineStatement SetStatus = new("UPDATE reservations SET status = @st WHERE id = @id", "@st", "@id");
    public static readonly BaselineStatement Lines = new("SELECT sku, loc, quantity FROM reservation_lines WHERE reservation_id = @id ORDER BY line_no", "@id");
    public static readonly BaselineStatement Unreserve = new("UPDATE stock SET reserved = reserved - @q WHERE sku = @s AND loc = @l", "@q", "@s", "@l");
    public static readonly BaselineStatement InsertEventId = new("INSERT INTO event_ids (event_id) VALUES (@id) ON CONFLICT (event_id) DO NOTHING", "@id");
    public static readonly BaselineStatement AddOnHand = new("INSERT INTO stock (sku, loc, on_hand) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET on_hand = stock.on_hand + @q RETURNING on_hand", "@s", "@l", "@q");
    public static readonly BaselineStatement SetOnHand = new("INSERT INTO stock (sku, loc, on_hand) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET on_hand = @q RETURNING on_hand", "@s", "@l", "@q");
    public static readonly BaselineStatement AddDamaged = new("INSERT INTO stock (sku, loc, damaged) VALUES (@s, @l, @q) ON CONFLICT (sku, loc) DO UPDATE SET damaged = stock.damaged + @q RETURNING on_hand", "@s", "@l", "@q");
    public static readonly BaselineStatement InsertLedger = new(
        "INSERT INTO ledger (sku, loc, event_id, type, quantity, occurred_at, on_hand_after) VALUES (@s, @l, @id, @t, @q, @at, @after)",
        "@s", "@l", "@id", "@t", "@q", "@at", "@after");
    public static readonly BaselineStatement StockOfSku = new("SELECT loc, on_hand, reserved, damaged FROM stock WHERE sku = @s ORDER BY loc", "@s");
}

/// <summary>
/// Runs the baseline's statements on one connection, inside a transaction when there is one.
/// Each statement gets a fresh command, disposed after use; a store that keeps prepared commands
/// overrides <see cref="Create"/> and <see cref="Return"/>.
/// </summary>
internal class BaselineCommands(DbConnection connection, DbTransaction? transaction)
{
    public async ValueTask<int> Run(BaselineStatement statement, params object[] values)
    {
        var cmd = Rent(statement, values);
        try
        {
            return await cmd.ExecuteNonQueryAsync();
        }
        finally
        {
            Return(cmd);
        }
    }

    public async ValueTask<object?> Scalar(BaselineStatement statement, params object[] values)
    {
        var cmd = Rent(statement, values);
        try
        {
            return await cmd.ExecuteScalarAsync();
        }
        finally
        {
            Return(cmd);
        }
    }

    public async ValueTask<List<T>> Query<T>(BaselineStatement statement, Func<DbDataReader, T> row, params object[] values)
    {
        var cmd = Rent(statement, values);
        try
        {
            var rows = new List<T>();
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add(row(reader));
            }
            return rows;
        }
        finally
        {
            Return(cmd);
        }
    }

    /// <summary>A command for <paramref name="statement"/> on this connection, with one parameter per name.</summary>
    protected virtual DbCommand Create(BaselineStatement statement)
    {
        var cmd = connection.CreateCommand();
        cmd.CommandText = statement.Text;
        foreach (var name in statement.Names)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    protected virtual void Return(DbCommand cmd) => cmd.Dispose();

    private DbCommand Rent(BaselineStatement statement, object[] values)
    {
        var cmd = Create(statement);
        cmd.Transaction = transaction;
        for (var i = 0; i < values.Length; i++)
        {
            cmd.Parameters[i].Value = values[i];
        }
        return cmd;
    }
}

/// <summary>
/// The baseline's request handling, the same on both stores: every write request is one
/// transaction, a reservation takes each line with the conditional row update
/// (<see cref="BaselineSql.Reserve"/>) at the first sourcing location that has the quantity, then
/// inserts the reservation and its lines, then commits. A store supplies its connections and
/// transactions (<see cref="Write"/>, <see cref="Read{T}"/>) and its dialect's differences.
/// </summary>
internal abstract class BaselineStore : IDisposable
{
    private readonly ConcurrentDictionary<string, string[]> _channels = new(StringComparer.Ordinal);
    private long _deadlockRetries;
    private long _serializationRetries;
    private long _retriesExhausted;

    /// <summary>Retry counts since the server started, for the harness (GET /baseline/stats).</summary>
    public object Stats() => new
    {
        deadlockRetries = Interlocked.Read(ref _deadlockRetries),
        serializationRetries = Interlocked.Read(ref _serializationRetries),
        retriesExhausted = Interlocked.Read(ref _retriesExhausted),
    };

    public async Task<IResult> PutLocation(string id) =>
        await Write(async c =>
        {
            await c.Run(BaselineSql.InsertLocation, id);
            return Outcome.Committed(Results.Ok(new { locationId = id }));
        });

    public async Task<IResult> PutChannel(string id, string[] locations)
    {
        var result = await Write(async c =>
        {
            await c.Run(BaselineSql.UpsertChannel, id, string.Join(',', locations));
            return Outcome.Committed(Results.Ok(new { channelId = id, locations }));
        });
        // Only once committed: a store may run the transaction more than once.
        _channels[id] = locations;
        return result;
    }

    /// <summary>One transaction for the whole request: each event is deduplicated by id, applied with an upsert, and written to the ledger.</summary>
    public async Task<IResult> ApplyEvents(BaselineServer.EventBody[] events) =>
        await Write(async c =>
        {
            var results = new object[events.Length];
            foreach (var i in ApplyOrder(events))
            {
                var e = events[i];
                if (await c.Run(BaselineSql.InsertEventId, e.EventId) == 0)
                {
                    results[i] = new { eventId = e.EventId, status = "duplicate" };
                    continue;
                }
                var (statement, q) = e.Type switch
                {
                    "received" or "return_received" or "adjusted" or "transfer_received" => (BaselineSql.AddOnHand, e.Quantity),
                    "sold" or "shipped" or "transfer_shipped" or "written_off" => (BaselineSql.AddOnHand, -e.Quantity),
                    "counted" => (BaselineSql.SetOnHand, e.Quantity),
                    "damaged" => (BaselineSql.AddDamaged, e.Quantity),
                    _ => (BaselineSql.AddOnHand, 0L),
                };
                var after = Convert.ToInt64(await c.Scalar(statement, e.Sku, e.LocationId, q), CultureInfo.InvariantCulture);
                await c.Run(BaselineSql.InsertLedger, e.Sku, e.LocationId, e.EventId, e.Type, e.Quantity, e.OccurredAt, after);
                results[i] = new { eventId = e.EventId, status = "applied" };
            }
            return Outcome.Committed(Results.Ok(new { results }));
        });

    /// <summary>All-or-nothing: each line takes the first sourcing location whose conditional update succeeds.</summary>
    public async Task<IResult> Reserve(BaselineServer.ReservationBody body)
    {
        if (!_channels.TryGetValue(body.ChannelId, out var sourcing))
        {
            return Results.UnprocessableEntity(new { type = "unknown-channel" });
        }
        var now = DateTimeOffset.UtcNow;
        return await Write(async c =>
        {
            var taken = new string[body.Lines.Length];
            for (var i = 0; i < body.Lines.Length; i++)
            {
                var line = body.Lines[i];
                string? chosen = null;
                foreach (var loc in line.LocationId is null ? sourcing : [line.LocationId])
                {
                    if (await c.Run(BaselineSql.Reserve, line.Quantity, line.Sku, loc) == 1)
                    {
                        chosen = loc;
                        break;
                    }
                }
                if (chosen is null)
                {
                    return Outcome.RolledBack(Results.Conflict(new { type = "insufficient-stock", sku = line.Sku }));
                }
                taken[i] = chosen;
            }
            var inserted = await c.Run(BaselineSql.InsertReservation, body.ReservationId, body.ChannelId,
                now.ToString("O", CultureInfo.InvariantCulture), now.AddSeconds(body.TtlSeconds ?? 900).ToString("O", CultureInfo.InvariantCulture));
            if (inserted == 0)
            {
                return Outcome.RolledBack(Results.Ok(new { reservationId = body.ReservationId, status = "existing" }));
            }
            for (var i = 0; i < taken.Length; i++)
            {
                await c.Run(BaselineSql.InsertLine, body.ReservationId, i, body.Lines[i].Sku, taken[i], body.Lines[i].Quantity);
            }
            return Outcome.Committed(Results.Json(new
            {
                reservationId = body.ReservationId,
                status = "held",
                channelId = body.ChannelId,
                lines = body.Lines.Select((l, i) => new { sku = l.Sku, quantity = l.Quantity, locationId = taken[i] }),
            }, statusCode: 201));
        });
    }

    /// <summary>
    /// Commit marks the reservation committed (its units stay counted in reserved); release gives
    /// the units back with the reverse row update.
    /// </summary>
    public async Task<IResult> Transition(string id, bool commit) =>
        await Write(async c =>
        {
            var status = await c.Scalar(StatusStatement, id) as string;
            if (status is null)
            {
                return Outcome.Committed(Results.NotFound(new { type = "unknown-reservation" }));
            }
            var target = commit ? "committed" : "released";
            if (status == target)
            {
                return Outcome.Committed(Results.Ok(new { reservationId = id, status }));
            }
            if (status == "released" || (commit && status != "held"))
            {
                return Outcome.Committed(Results.Conflict(new { type = "illegal-state", status }));
            }
            if (!commit)
            {
                var lines = await c.Query(BaselineSql.Lines, r => (Sku: r.GetString(0), Loc: r.GetString(1), Quantity: r.GetInt64(2)), id);
                foreach (var (sku, loc, q) in lines)
                {
                    await c.Run(BaselineSql.Unreserve, q, sku, loc);
                }
            }
            await c.Run(BaselineSql.SetStatus, target, id);
            return Outcome.Committed(Results.Ok(new { reservationId = id, status = target }));
        });

    public async Task<IResult> Availability(string sku)
    {
        var rows = await Read(c => c.Query(BaselineSql.StockOfSku,
            r => (Loc: r.GetString(0), OnHand: r.GetInt64(1), Reserved: r.GetInt64(2), Damaged: r.GetInt64(3)), sku));
        var available = new Dictionary<string, long>(StringComparer.Ordinal);
        var locations = new List<object>(rows.Count);
        foreach (var (loc, onHand, reserved, damaged) in rows)
        {
            available[loc] = onHand - reserved - damaged;
            locations.Add(new { locationId = loc, onHand, reserved, damaged, available = onHand - reserved - damaged });
        }
        var channels = _channels.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new { channelId = kv.Key, available = kv.Value.Sum(l => Math.Max(0, available.GetValueOrDefault(l))) });
        return Results.Ok(new { sku, locations, channels });
    }

    public async Task<IResult> ChannelAvailability(string channelId, string[] skus)
    {
        if (!_channels.TryGetValue(channelId, out var sourcing))
        {
            return Results.NotFound(new { type = "unknown-channel" });
        }
        // One statement for the whole list: the SKUs travel as one parameter.
        var (statement, parameter) = AvailableOfSkus(skus);
        var rows = await Read(c => c.Query(statement, r => (Sku: r.GetString(0), Loc: r.GetString(1), Available: r.GetInt64(2)), parameter));
        var pool = new Dictionary<string, long>(StringComparer.Ordinal);
        var inChannel = new HashSet<string>(sourcing, StringComparer.Ordinal);
        foreach (var (sku, loc, available) in rows)
        {
            if (inChannel.Contains(loc))
            {
                pool[sku] = pool.GetValueOrDefault(sku) + Math.Max(0, available);
            }
        }
        return Results.Ok(new { channelId, items = skus.Select(s => new { sku = s, available = pool.GetValueOrDefault(s) }) });
    }

    public abstract void Dispose();

    /// <summary>Fills the channel cache from the table; stores call it once their schema exists.</summary>
    protected async Task LoadChannels()
    {
        foreach (var (id, locations) in await Read(c => c.Query(BaselineSql.Channels, r => (Id: r.GetString(0), Locations: r.GetString(1)))))
        {
            _channels[id] = locations.Split(',');
        }
    }

    /// <summary>Runs <paramref name="work"/> in one write transaction, committed or rolled back as its outcome says.</summary>
    protected abstract Task<IResult> Write(Func<BaselineCommands, ValueTask<Outcome>> work);

    /// <summary>Runs <paramref name="work"/> on a reader connection, outside any write transaction.</summary>
    protected abstract Task<T> Read<T>(Func<BaselineCommands, ValueTask<T>> work);

    /// <summary>The status read of a commit or release.</summary>
    protected virtual BaselineStatement StatusStatement => BaselineSql.Status;

    /// <summary>The bulk read of <c>sku, loc, available</c> rows, and its one parameter holding every SKU.</summary>
    protected abstract (BaselineStatement Statement, object Skus) AvailableOfSkus(string[] skus);

    /// <summary>The order in which the events of one request are applied; request order unless a store needs another.</summary>
    protected virtual IEnumerable<int> ApplyOrder(BaselineServer.EventBody[] events) => Enumerable.Range(0, events.Length);

    /// <summary>Counts a transaction that the database rolled back as a deadlock victim or a serialization failure.</summary>
    protected void CountRetry(bool deadlock, bool exhausted)
    {
        Interlocked.Increment(ref deadlock ? ref _deadlockRetries : ref _serializationRetries);
        if (exhausted)
        {
            Interlocked.Increment(ref _retriesExhausted);
        }
    }
}
