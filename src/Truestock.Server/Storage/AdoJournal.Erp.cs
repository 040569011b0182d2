using System.Data;
using System.Data.Common;
using System.Globalization;
using Truestock.Core;

namespace Truestock.Server.Storage;

/// <summary>A pending ERP posting as the poster reads it: the outbox row joined with its ledger row.</summary>
/// <param name="LedgerId">The ledger row (and outbox row) id.</param>
/// <param name="Attempts">Attempts made so far.</param>
/// <param name="OnHandDelta">
/// The on-hand change the ledger row made: its on-hand after minus the on-hand after the position's previous ledger row.
/// Every on-hand change of a position has a ledger row, so this is exact, counts included.
/// </param>
internal readonly record struct PendingErpPosting(
    long LedgerId, int Attempts, string Sku, string LocationId, string EventId, string Type, long Quantity, long OnHandAfter,
    long OnHandDelta, DateTimeOffset OccurredAt, string Source);

/// <summary>What the ERP made of a ledger row, for the ledger API.</summary>
internal readonly record struct ErpPostingState(string Status, long? PostedAtMs, string? DocumentId, string? Error);

/// <summary>A dead-lettered ERP posting.</summary>
internal readonly record struct ErpDeadLetter(
    long LedgerId, string Sku, string LocationId, string EventId, string Type, long Quantity, int Attempts, string? Error, long DeadAtMs);

/// <summary>Counts of the ERP outbox.</summary>
internal readonly record struct ErpCounts(long Pending, long Due, long Dead, long? OldestPendingMs);

/// <summary>
/// The ERP posting outbox (table <c>erp_outbox</c>). When ERP posting is on, the engine's batch transaction inserts one
/// pending row per stock movement of the ledger; the poster reads what is due, posts it and records the ERP's answer.
/// Unlike the channel outbox nothing is coalesced: every movement is a booking of its own.
/// </summary>
internal abstract partial class AdoJournal
{
    /// <summary>Outbox statuses.</summary>
    internal static class ErpStatus
    {
        public const string Pending = "pending";
        public const string Posted = "posted";
        public const string Skipped = "skipped";
        public const string Dead = "dead";
        public const string Discarded = "discarded";
    }

    /// <summary>
    /// Event types that can change on-hand units at the ledger row's location. <c>damaged</c> never does (it changes
    /// which part of on-hand is sellable); reservation and safety-stock rows have no event id and never do either.
    /// </summary>
    private static readonly HashSet<string> ErpMovementTypes = new(StringComparer.Ordinal)
    {
        "received", "sold", "adjusted", "counted", "written_off", "return_received", "inspected", "transfer_shipped",
        "transfer_received", "shipped",
    };

    private DbCommand? _insertErp;

    /// <summary>
    /// When true, <see cref="Append"/> queues every stock movement for the ERP in the batch's transaction. Set once at
    /// start-up from the ERP options; when false, appending costs nothing more than before.
    /// </summary>
    public bool ErpPostingEnabled { get; set; }

    /// <summary>True for a ledger row the ERP is told about: an applied event whose type can change on-hand.</summary>
    internal static bool IsErpMovement(in LedgerEntry e) => e.EventId is not null && e.Status == "applied" && ErpMovementTypes.Contains(e.Type);

    private DbCommand PrepareErpOutbox(DbConnection writer) =>
        _insertErp ??= Prepare(writer, "INSERT INTO erp_outbox (ledger_id, status, attempts, next_attempt_ms, enqueued_at_ms) VALUES (@p1, 'pending', 0, 0, @p2)",
            DbType.Int64, DbType.Int64);

    private void DisposeErpOutbox()
    {
        _insertErp?.Dispose();
        _insertErp = null;
    }

    /// <summary>Inserts the batch's movements; ledger ids are numbered from <paramref name="firstLedgerId"/> in record order, as Append numbers them.</summary>
    private static void AppendErpOutbox(DbCommand insert, DbTransaction tx, IReadOnlyList<PendingRecord> records, Effects effects, long firstLedgerId,
        DateTimeOffset batchTime)
    {
        insert.Transaction = tx;
        try
        {
            var id = firstLedgerId;
            var enqueuedAtMs = batchTime.ToUnixTimeMilliseconds();
            foreach (var r in records)
            {
                for (var i = r.LedgerFrom; i < r.LedgerTo; i++, id++)
                {
                    if (IsErpMovement(effects.Ledger[i]))
                    {
                        Bind(insert, id, enqueuedAtMs);
                        insert.ExecuteNonQuery();
                    }
                }
            }
        }
        finally
        {
            insert.Transaction = null;
        }
    }

    /// <summary>Due postings: rows never tried first, in ledger order, then retries in the order they fall due.</summary>
    public List<PendingErpPosting> ReadErpPending(long nowMs, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT o.ledger_id, o.attempts, l.sku, l.location_id, l.event_id, l.type, l.quantity, l.on_hand_after, l.occurred_at, l.source,
                (SELECT p.on_hand_after FROM ledger p WHERE p.sku = l.sku AND p.location_id = l.location_id AND p.id < l.id ORDER BY p.id DESC LIMIT 1)
            FROM erp_outbox o JOIN ledger l ON l.id = o.ledger_id
            WHERE o.status = 'pending' AND o.next_attempt_ms <= @p1
            ORDER BY o.next_attempt_ms, o.ledger_id
            LIMIT @p2
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int32);
        Bind(cmd, nowMs, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<PendingErpPosting>(Math.Min(limit, 1024));
        while (r.Read())
        {
            var after = r.GetInt64(7);
            var before = r.IsDBNull(10) ? 0 : r.GetInt64(10);
            list.Add(new PendingErpPosting(r.GetInt64(0), r.GetInt32(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5),
                r.GetInt64(6), after, after - before, ParseTime(r.GetString(8)), r.GetString(9)));
        }
        return list;
    }

    /// <summary>One ERP answer to record.</summary>
    internal readonly record struct ErpResult(long LedgerId, string Status, string? DocumentId, string? Error, long NextAttemptMs);

    /// <summary>
    /// Records the answers of one batch in one transaction. Only pending rows change, so an answer never overrides an
    /// operator's discard. <see cref="ErpResult.Status"/> is posted, skipped, dead, or pending for a retry at
    /// <see cref="ErpResult.NextAttemptMs"/>.
    /// </summary>
    public void RecordErpResults(IReadOnlyList<ErpResult> results, long nowMs)
    {
        if (results.Count == 0)
        {
            return;
        }
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        using var posted = Command(c, tx, """
            UPDATE erp_outbox SET status = @p2, attempts = attempts + CASE WHEN @p2 = 'posted' THEN 1 ELSE 0 END, posted_at_ms = @p3, document_id = @p4, error = NULL
            WHERE ledger_id = @p1 AND status = 'pending'
            """, DbType.Int64, DbType.String, DbType.Int64, DbType.String);
        using var retry = Command(c, tx, """
            UPDATE erp_outbox SET attempts = attempts + 1, next_attempt_ms = @p2, error = @p3
            WHERE ledger_id = @p1 AND status = 'pending'
            """, DbType.Int64, DbType.Int64, DbType.String);
        using var dead = Command(c, tx, """
            UPDATE erp_outbox SET status = 'dead', attempts = attempts + 1, dead_at_ms = @p2, error = @p3
            WHERE ledger_id = @p1 AND status = 'pending'
            """, DbType.Int64, DbType.Int64, DbType.String);
        foreach (var result in results)
        {
            switch (result.Status)
            {
                case ErpStatus.Posted or ErpStatus.Skipped:
                    Bind(posted, result.LedgerId, result.Status, nowMs, result.DocumentId);
                    posted.ExecuteNonQuery();
                    break;
                case ErpStatus.Pending:
                    Bind(retry, result.LedgerId, result.NextAttemptMs, result.Error);
                    retry.ExecuteNonQuery();
                    break;
                case ErpStatus.Dead:
                    Bind(dead, result.LedgerId, nowMs, result.Error);
                    dead.ExecuteNonQuery();
                    break;
                default:
                    throw new ArgumentException($"'{result.Status}' is not an ERP result status.", nameof(results));
            }
        }
        tx.Commit();
    }

    /// <summary>Backlog, due rows, dead letters and the enqueue time of the oldest pending row.</summary>
    public ErpCounts ReadErpCounts(long nowMs)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        // Each part reads a range of the status indexes, so the cost follows the backlog, not the table.
        cmd.CommandText = """
            SELECT
                (SELECT COUNT(*) FROM erp_outbox WHERE status = 'pending'),
                (SELECT COUNT(*) FROM erp_outbox WHERE status = 'pending' AND next_attempt_ms <= @p1),
                (SELECT COUNT(*) FROM erp_outbox WHERE status = 'dead'),
                (SELECT enqueued_at_ms FROM erp_outbox WHERE status = 'pending' ORDER BY ledger_id LIMIT 1)
            """;
        AddParameters(cmd, DbType.Int64);
        Bind(cmd, nowMs);
        using var r = cmd.ExecuteReader();
        r.Read();
        return new ErpCounts(Long(r, 0), Long(r, 1), Long(r, 2), r.IsDBNull(3) ? null : Long(r, 3));
    }

    /// <summary>How many rows have a status (for the status API; counts an index range).</summary>
    public long CountErpOutbox(string? status)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM erp_outbox WHERE @p1 IS NULL OR status = @p1";
        AddParameters(cmd, DbType.String);
        Bind(cmd, status);
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <summary>The time of the newest posting, or null.</summary>
    public long? ReadLastErpPostedMs()
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT posted_at_ms FROM erp_outbox WHERE status = 'posted' ORDER BY ledger_id DESC LIMIT 1";
        var value = cmd.ExecuteScalar();
        return value is null or DBNull ? null : Convert.ToInt64(value, CultureInfo.InvariantCulture);
    }

    /// <summary>The ERP state of the ledger rows from <paramref name="fromId"/> to <paramref name="toId"/> (a ledger page).</summary>
    public Dictionary<long, ErpPostingState> ReadErpStates(long fromId, long toId)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ledger_id, status, posted_at_ms, document_id, error FROM erp_outbox WHERE ledger_id >= @p1 AND ledger_id <= @p2";
        AddParameters(cmd, DbType.Int64, DbType.Int64);
        Bind(cmd, fromId, toId);
        using var r = cmd.ExecuteReader();
        var states = new Dictionary<long, ErpPostingState>();
        while (r.Read())
        {
            states[r.GetInt64(0)] = new ErpPostingState(r.GetString(1), r.IsDBNull(2) ? null : r.GetInt64(2), NullableString(r, 3), NullableString(r, 4));
        }
        return states;
    }

    /// <summary>Dead letters in ledger order after <paramref name="afterId"/>; one when <paramref name="ledgerId"/> is given.</summary>
    public List<ErpDeadLetter> ReadErpDeadLetters(long? ledgerId, long afterId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT o.ledger_id, l.sku, l.location_id, l.event_id, l.type, l.quantity, o.attempts, o.error, o.dead_at_ms
            FROM erp_outbox o JOIN ledger l ON l.id = o.ledger_id
            WHERE o.status = 'dead' AND (@p1 IS NULL OR o.ledger_id = @p1) AND o.ledger_id > @p2
            ORDER BY o.ledger_id LIMIT @p3
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.Int32);
        Bind(cmd, ledgerId, afterId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ErpDeadLetter>(Math.Min(limit, 1024));
        while (r.Read())
        {
            list.Add(new ErpDeadLetter(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5), r.GetInt32(6),
                NullableString(r, 7), r.IsDBNull(8) ? 0 : r.GetInt64(8)));
        }
        return list;
    }

    /// <summary>Puts dead letters back in the queue (one, or all when <paramref name="ledgerId"/> is null); returns how many.</summary>
    public int ReplayErpDeadLetters(long? ledgerId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            UPDATE erp_outbox SET status = 'pending', attempts = 0, next_attempt_ms = 0, dead_at_ms = NULL
            WHERE status = 'dead' AND (@p1 IS NULL OR ledger_id = @p1)
            """, DbType.Int64);
        Bind(cmd, ledgerId);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>Discards dead letters: the ERP never books them (one, or all when <paramref name="ledgerId"/> is null); returns how many.</summary>
    public int DiscardErpDeadLetters(long? ledgerId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, "UPDATE erp_outbox SET status = 'discarded' WHERE status = 'dead' AND (@p1 IS NULL OR ledger_id = @p1)", DbType.Int64);
        Bind(cmd, ledgerId);
        return cmd.ExecuteNonQuery();
    }

    private static long Long(DbDataReader r, int i) => Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);
}
