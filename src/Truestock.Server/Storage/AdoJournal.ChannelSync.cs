using System.Data;
using System.Data.Common;

namespace Truestock.Server.Storage;

/// <summary>
/// A (channel, SKU) whose ATS the engine recomputed in a batch. <paramref name="Force"/> makes it
/// pending even when the ATS did not change (the channel's endpoint changed: it must be told anew).
/// </summary>
internal readonly record struct SyncChange(string ChannelId, string Sku, long Ats, bool Force = false);

/// <summary>A pending publication, as the publisher reads it.</summary>
internal readonly record struct PendingPublication(string Sku, long Ats, long Version, long ChangedAtMs, long? PublishedAts, int Attempts);

/// <summary>A dead-lettered publication.</summary>
internal readonly record struct DeadLetter(string Sku, long Ats, long Version, long? PublishedAts, int Attempts, string? Error, long DeadAtMs);

/// <summary>Counts of one channel's outbox.</summary>
internal readonly record struct SyncCounts(long Pending, long Due, long Dead, long? OldestPendingMs, long? LastPublishedMs, long Rows);

/// <summary>
/// The channel publication outbox (table <c>channel_sync</c>). The engine upserts the latest ATS
/// per (channel, SKU) in its batch transaction; the publisher reads what is pending, urgent first,
/// and records the channel's answers. Only the latest value per (channel, SKU) is kept, which is
/// what coalesces ten changes in a second into one call.
/// </summary>
internal abstract partial class AdoJournal
{
    // A row becomes pending only when the ATS really changed; its change time stays the oldest
    // unpublished change so that lag is measured from the first change the channel has not seen.
    // A dead row takes the new value but stays dead until an operator replays or discards it.
    // The row-by-row statement and PostgreSQL's bulk statement share these parts, so the two paths
    // cannot drift apart.
    protected const string SyncInsertColumnsSql = """
        INSERT INTO channel_sync (channel_id, sku, ats, version, changed_at_ms, pending, published_ats, published_version,
            published_at_ms, attempts, next_attempt_ms, dead, dead_at_ms, last_error)
        """;

    protected const string SyncOnConflictSql = """
        ON CONFLICT (channel_id, sku) DO UPDATE SET
            ats = excluded.ats,
            version = excluded.version,
            changed_at_ms = CASE WHEN channel_sync.pending = 1 THEN channel_sync.changed_at_ms ELSE excluded.changed_at_ms END,
            pending = CASE WHEN channel_sync.dead = 1 THEN 0 ELSE 1 END
        """;

    // @p6 = 1 forces the row pending even with an unchanged ATS (a new connector endpoint).
    private const string UpsertSyncSql = SyncInsertColumnsSql + "\n" + """
        VALUES (@p1, @p2, @p3, @p4, @p5, 1, NULL, 0, NULL, 0, 0, 0, NULL, NULL)
        """ + "\n" + SyncOnConflictSql + "\n" + """
        WHERE channel_sync.ats <> excluded.ats OR @p6 = 1
        """;

    /// <summary>
    /// Pending publications of a channel that are due, urgent first (ATS falling to the low-stock
    /// threshold or below), then oldest first.
    /// </summary>
    public List<PendingPublication> ReadPending(string channelId, long lowStockThreshold, long nowMs, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT sku, ats, version, changed_at_ms, published_ats, attempts FROM channel_sync
            WHERE channel_id = @p1 AND pending = 1 AND next_attempt_ms <= @p2
            ORDER BY CASE WHEN ats <= @p3 AND (published_ats IS NULL OR ats < published_ats) THEN 0 ELSE 1 END, changed_at_ms, sku
            LIMIT @p4
            """;
        AddParameters(cmd, DbType.String, DbType.Int64, DbType.Int64, DbType.Int32);
        Bind(cmd, channelId, nowMs, lowStockThreshold, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<PendingPublication>(Math.Min(limit, 1024));
        while (r.Read())
        {
            list.Add(new PendingPublication(r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3),
                r.IsDBNull(4) ? null : r.GetInt64(4), r.GetInt32(5)));
        }
        return list;
    }

    /// <summary>One channel answer to record.</summary>
    internal readonly record struct SyncResult(string Sku, long Ats, long Version, SyncResultKind Kind, string? Error, long NextAttemptMs);

    /// <summary>How a publication ended.</summary>
    internal enum SyncResultKind
    {
        /// <summary>The channel acknowledged the value.</summary>
        Published,
        /// <summary>Retry at NextAttemptMs.</summary>
        Retry,
        /// <summary>Give up: dead letter.</summary>
        Dead,
    }

    /// <summary>
    /// Records the channel's answers in one transaction. An acknowledgement never moves the
    /// published version backwards, and a row that changed meanwhile stays pending.
    /// </summary>
    public void RecordPublications(string channelId, IReadOnlyList<SyncResult> results, long nowMs, long readAtMs = 0)
    {
        if (results.Count == 0)
        {
            return;
        }
        // The same row order as the engine's batch (by SKU within a channel), so that the two
        // transactions can never deadlock on each other's row locks (PostgreSQL).
        var ordered = results.OrderBy(r => r.Sku, StringComparer.Ordinal).ToList();
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        // A row that changed after it was read stays pending; its change time moves up to the read,
        // because every change the channel has not seen now happened after it (lag would otherwise
        // be measured from a change the channel has long acknowledged).
        using var published = Command(c, tx, """
            UPDATE channel_sync SET published_ats = @p3, published_version = @p4, published_at_ms = @p5, attempts = 0,
                next_attempt_ms = 0, last_error = NULL, pending = CASE WHEN version > @p4 THEN 1 ELSE 0 END,
                changed_at_ms = CASE WHEN version > @p4 AND changed_at_ms < @p6 THEN @p6 ELSE changed_at_ms END
            WHERE channel_id = @p1 AND sku = @p2 AND published_version < @p4
            """, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64);
        using var retry = Command(c, tx, """
            UPDATE channel_sync SET attempts = attempts + 1, next_attempt_ms = @p3, last_error = @p4
            WHERE channel_id = @p1 AND sku = @p2 AND pending = 1
            """, DbType.String, DbType.String, DbType.Int64, DbType.String);
        using var dead = Command(c, tx, """
            UPDATE channel_sync SET attempts = attempts + 1, dead = 1, pending = 0, dead_at_ms = @p3, last_error = @p4
            WHERE channel_id = @p1 AND sku = @p2 AND pending = 1
            """, DbType.String, DbType.String, DbType.Int64, DbType.String);
        foreach (var result in ordered)
        {
            switch (result.Kind)
            {
                case SyncResultKind.Published:
                    Bind(published, channelId, result.Sku, result.Ats, result.Version, nowMs, readAtMs);
                    published.ExecuteNonQuery();
                    break;
                case SyncResultKind.Retry:
                    Bind(retry, channelId, result.Sku, result.NextAttemptMs, result.Error);
                    retry.ExecuteNonQuery();
                    break;
                default:
                    Bind(dead, channelId, result.Sku, nowMs, result.Error);
                    dead.ExecuteNonQuery();
                    break;
            }
        }
        tx.Commit();
    }

    /// <summary>Counts for status and metrics.</summary>
    public SyncCounts ReadSyncCounts(string channelId, long nowMs)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT COALESCE(SUM(pending), 0), COALESCE(SUM(CASE WHEN pending = 1 AND next_attempt_ms <= @p2 THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(dead), 0), MIN(CASE WHEN pending = 1 THEN changed_at_ms END), MAX(published_at_ms), COUNT(*)
            FROM channel_sync WHERE channel_id = @p1
            """;
        AddParameters(cmd, DbType.String, DbType.Int64);
        Bind(cmd, channelId, nowMs);
        using var r = cmd.ExecuteReader();
        r.Read();
        return new SyncCounts(Convert.ToInt64(r.GetValue(0), System.Globalization.CultureInfo.InvariantCulture),
            Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture),
            Convert.ToInt64(r.GetValue(2), System.Globalization.CultureInfo.InvariantCulture),
            r.IsDBNull(3) ? null : Convert.ToInt64(r.GetValue(3), System.Globalization.CultureInfo.InvariantCulture),
            r.IsDBNull(4) ? null : Convert.ToInt64(r.GetValue(4), System.Globalization.CultureInfo.InvariantCulture),
            Convert.ToInt64(r.GetValue(5), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Dead letters of a channel in SKU order, after <paramref name="afterSku"/>.</summary>
    public List<DeadLetter> ReadDeadLetters(string channelId, string? sku, string afterSku, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT sku, ats, version, published_ats, attempts, last_error, dead_at_ms FROM channel_sync
            WHERE channel_id = @p1 AND dead = 1 AND (@p2 IS NULL OR sku = @p2) AND sku > @p3 ORDER BY sku LIMIT @p4
            """;
        AddParameters(cmd, DbType.String, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, channelId, sku, afterSku, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<DeadLetter>(Math.Min(limit, 1024));
        while (r.Read())
        {
            list.Add(new DeadLetter(r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3), r.GetInt32(4),
                r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? 0 : r.GetInt64(6)));
        }
        return list;
    }

    /// <summary>Puts dead letters back in the queue (one SKU, or all when <paramref name="sku"/> is null). Returns how many.</summary>
    public int ReplayDeadLetters(string channelId, string? sku, long nowMs)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            UPDATE channel_sync SET dead = 0, pending = 1, attempts = 0, next_attempt_ms = 0, dead_at_ms = NULL, changed_at_ms = @p3
            WHERE channel_id = @p1 AND dead = 1 AND (@p2 IS NULL OR sku = @p2)
            """, DbType.String, DbType.String, DbType.Int64);
        Bind(cmd, channelId, sku, nowMs);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// Discards dead letters: the channel keeps whatever it shows until the SKU's ATS changes again.
    /// Returns how many.
    /// </summary>
    public int DiscardDeadLetters(string channelId, string? sku)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            UPDATE channel_sync SET dead = 0, pending = 0, attempts = 0, next_attempt_ms = 0, dead_at_ms = NULL
            WHERE channel_id = @p1 AND dead = 1 AND (@p2 IS NULL OR sku = @p2)
            """, DbType.String, DbType.String);
        Bind(cmd, channelId, sku);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>The outbox row of one (channel, SKU), for tests and the status API: (ats, version, published ATS, published version, pending, dead).</summary>
    public (long Ats, long Version, long? PublishedAts, long PublishedVersion, bool Pending, bool Dead)? ReadSyncRow(string channelId, string sku)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ats, version, published_ats, published_version, pending, dead FROM channel_sync WHERE channel_id = @p1 AND sku = @p2";
        AddParameters(cmd, DbType.String, DbType.String);
        Bind(cmd, channelId, sku);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? (r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.GetInt64(3), r.GetInt32(4) == 1, r.GetInt32(5) == 1)
            : null;
    }

    private static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params DbType[] types)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        AddParameters(cmd, types);
        return cmd;
    }
}
