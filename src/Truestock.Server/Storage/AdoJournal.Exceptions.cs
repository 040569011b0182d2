using System.Data;
using System.Data.Common;
using System.Globalization;

namespace Truestock.Server.Storage;

/// <summary>Where an exception comes from. The order is the tie-break of the merged list when two are raised in the same millisecond.</summary>
internal enum ExceptionSource
{
    /// <summary>Table <c>exceptions</c>: oversell, negative-on-hand, clamp, sequence-gap.</summary>
    Engine = 0,

    /// <summary>Table <c>drift_exceptions</c>: raised by reconciliation through the workflow's Raise API.</summary>
    Drift = 1,

    /// <summary>Table <c>channel_sync</c> rows that are dead letters.</summary>
    Channel = 2,

    /// <summary>Table <c>erp_outbox</c> rows that are dead letters.</summary>
    Erp = 3,
}

/// <summary>Filters of the exception list; null means any. The three flags select the (effective) statuses listed.</summary>
internal sealed record ExceptionFilter(
    string? Kind, string? Sku, string? LocationId, string? ChannelId, string? Assignee, bool Open, bool Acknowledged, bool Resolved);

/// <summary>
/// Where a page of the merged list stopped, per source: each source is read in its own order (the engine by id, the
/// others by time and then their own key), so that paging never skips or repeats an item whatever the other sources do.
/// A null tie (channel) or <see cref="long.MaxValue"/> tie (drift, ERP) means "everything at that millisecond was listed".
/// </summary>
internal sealed record ExceptionPosition(
    long EngineId, long DriftMs, long DriftId, long ChannelMs, string? ChannelId, string? ChannelSku, long ErpMs, long ErpId)
{
    public static readonly ExceptionPosition Start = new(0, long.MinValue, 0, long.MinValue, null, null, long.MinValue, 0);
}

/// <summary>The workflow row of an exception as stored (it may belong to an earlier incident of a dead letter).</summary>
internal sealed record WorkflowRow(long Version, long RaisedAtMs, string Status, string? Assignee, long? ResolvedAtMs);

/// <summary>
/// One exception with its effective workflow state. <see cref="Status"/> is what the API shows: the stored status, or
/// open when nobody touched it, or resolved when a dead letter was replayed or discarded (derived from its outbox).
/// </summary>
internal sealed record ExceptionItem(
    string Key, ExceptionSource Source, string Kind, string? Sku, string? LocationId, string? ChannelId, long Quantity, string Detail,
    long RaisedAtMs, DateTimeOffset RaisedAt, string Status, string? Assignee, long? ResolvedAtMs, WorkflowRow? Row)
{
    /// <summary>The engine exception id (engine), drift id (drift) or ledger id (ERP).</summary>
    public long RefId { get; init; }

    public string? EventId { get; init; }

    public string? ReservationId { get; init; }

    /// <summary>The reporting source of an engine exception, or the system a drift was found against.</summary>
    public string? Origin { get; init; }

    /// <summary>True for a channel or ERP dead letter, whose resolution is derived from its outbox.</summary>
    public bool IsDeadLetter { get; init; }

    /// <summary>Drift only: what the hub expected, what the other system reported, a reference (e.g. the run), how often it was seen.</summary>
    public long? Expected { get; init; }

    public long? Reported { get; init; }

    public string? Reference { get; init; }

    public long Occurrences { get; init; } = 1;

    public long? LastSeenAtMs { get; init; }

    /// <summary>ERP only: the movement's type.</summary>
    public string? MovementType { get; init; }
}

/// <summary>One row of an exception's audit trail.</summary>
internal sealed record ExceptionHistoryRow(
    long Version, long AtMs, string Actor, string Action, long RaisedAtMs, string? FromStatus, string? ToStatus, bool AssigneeChanged,
    string? FromAssignee, string? ToAssignee, string? NoteAuthor, string? NoteText);

/// <summary>The newest note of an exception's current incident and how many it has.</summary>
internal sealed record NoteSummary(long RaisedAtMs, long Count, string Author, string Text, long AtMs, string Actor);

/// <summary>
/// A change of workflow state and its audit row, written in one transaction. <see cref="ExpectedVersion"/> 0 creates the
/// row; otherwise the row must still have that version (a concurrent change makes the write fail, and the caller retries).
/// </summary>
internal sealed record WorkflowChange(
    string Key, ExceptionSource Source, string Kind, long? RefId, string? ChannelId, string? Sku, long RaisedAtMs, long ExpectedVersion,
    string Status, string? Assignee, long? ResolvedAtMs, long AtMs, string Actor, string Action, string? FromStatus, string? ToStatus,
    bool AssigneeChanged, string? FromAssignee, string? ToAssignee, string? NoteAuthor, string? NoteText);

/// <summary>A drift exception to raise (see <c>ExceptionWorkflow.Raise</c>).</summary>
internal sealed record DriftInsert(
    string Kind, string Sku, string? LocationId, string? ChannelId, long Quantity, string Detail, long? Expected, long? Reported,
    string? System, string? Reference, string? DedupeKey, long AtMs);

/// <summary>One row of the drift report.</summary>
internal readonly record struct DriftReportRow(long BucketStartMs, string? ChannelId, string? LocationId, long Count, long Units, long NetUnits);

/// <summary>One row of the oversell report; the bucket is the UTC date (yyyy-MM-dd) or hour (yyyy-MM-ddTHH) of the recorded time.</summary>
internal readonly record struct OversellReportRow(string Bucket, string? LocationId, long Count, long Units);

/// <summary>One resolution from the audit trail, for the time-to-resolve report.</summary>
internal readonly record struct ResolutionRow(long ResolvedAtMs, long RaisedAtMs, string Kind);

/// <summary>
/// The exceptions workflow's store access: the merged exception list over the engine's exceptions, the channel and ERP
/// dead letters and the drift exceptions reconciliation raises, the workflow state and audit trail, and the reports.
/// Portable SQL for SQLite and PostgreSQL, like the rest of the journal.
/// </summary>
internal abstract partial class AdoJournal
{
    /// <summary>Kind of a channel dead letter in the exception list.</summary>
    public const string ChannelDeadLetterKind = "channel-dead-letter";

    /// <summary>Kind of an ERP dead letter in the exception list.</summary>
    public const string ErpDeadLetterKind = "erp-dead-letter";

    // Drift ids are MAX(id) + 1; the lock keeps two raises of this process from taking the same id (only the writer
    // hub runs reconciliation, so no other process raises into the same store).
    private readonly Lock _raiseLock = new();

    private const string StatusCondition = """
        ((@s1 = 1 AND {0} = 'open') OR (@s2 = 1 AND {0} = 'acknowledged') OR (@s3 = 1 AND {0} = 'resolved'))
        """;

    /// <summary>Engine exceptions after <paramref name="afterId"/> in id order; <paramref name="exactId"/> reads one.</summary>
    public List<ExceptionItem> ReadEngineExceptionItems(ExceptionFilter filter, long afterId, long? exactId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT e.id, e.type, e.sku, e.location_id, e.event_id, e.reservation_id, e.source, e.quantity, e.detail, e.recorded_at,
                w.version, w.raised_at_ms, w.status, w.assignee, w.resolved_at_ms
            FROM exceptions e LEFT JOIN exception_workflow w ON w.exception_key = 'engine:' || CAST(e.id AS TEXT)
            WHERE e.id > @p1 AND (@p2 IS NULL OR e.id = @p2) AND (@p3 IS NULL OR e.type = @p3) AND (@p4 IS NULL OR e.sku = @p4)
                AND (@p5 IS NULL OR e.location_id = @p5) AND (@p6 IS NULL OR w.assignee = @p6)
                AND {string.Format(CultureInfo.InvariantCulture, StatusCondition, "COALESCE(w.status, 'open')")}
            ORDER BY e.id LIMIT @p7
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, afterId, exactId, filter.Kind, filter.Sku, filter.LocationId, filter.Assignee, limit);
        AddStatusParameters(cmd, filter);
        using var r = cmd.ExecuteReader();
        var list = new List<ExceptionItem>(Math.Min(limit, 1024));
        while (r.Read())
        {
            var id = r.GetInt64(0);
            var recordedAt = ParseTime(r.GetString(9));
            var row = ReadRow(r, 10);
            list.Add(new ExceptionItem("engine:" + id.ToString(CultureInfo.InvariantCulture), ExceptionSource.Engine, r.GetString(1),
                NullableString(r, 2), NullableString(r, 3), null, r.GetInt64(7), r.GetString(8), recordedAt.ToUnixTimeMilliseconds(), recordedAt,
                row?.Status ?? "open", row?.Assignee, row?.ResolvedAtMs, row)
            {
                RefId = id,
                EventId = NullableString(r, 4),
                ReservationId = NullableString(r, 5),
                Origin = NullableString(r, 6),
            });
        }
        return list;
    }

    /// <summary>Drift exceptions after (<paramref name="afterMs"/>, <paramref name="afterId"/>) in (raised time, id) order.</summary>
    public List<ExceptionItem> ReadDriftExceptionItems(ExceptionFilter filter, long afterMs, long afterId, long? exactId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT d.id, d.kind, d.sku, d.location_id, d.channel_id, d.quantity, d.detail, d.raised_at_ms, d.system, d.expected, d.reported,
                d.reference, d.occurrences, d.last_seen_at_ms, w.version, w.raised_at_ms, w.status, w.assignee, w.resolved_at_ms
            FROM drift_exceptions d LEFT JOIN exception_workflow w ON w.exception_key = 'drift:' || CAST(d.id AS TEXT)
            WHERE (d.raised_at_ms > @p1 OR (d.raised_at_ms = @p1 AND d.id > @p2)) AND (@p3 IS NULL OR d.id = @p3)
                AND (@p4 IS NULL OR d.kind = @p4) AND (@p5 IS NULL OR d.sku = @p5) AND (@p6 IS NULL OR d.location_id = @p6)
                AND (@p7 IS NULL OR d.channel_id = @p7) AND (@p8 IS NULL OR w.assignee = @p8)
                AND {string.Format(CultureInfo.InvariantCulture, StatusCondition, "COALESCE(w.status, 'open')")}
            ORDER BY d.raised_at_ms, d.id LIMIT @p9
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String,
            DbType.Int32);
        Bind(cmd, afterMs, afterId, exactId, filter.Kind, filter.Sku, filter.LocationId, filter.ChannelId, filter.Assignee, limit);
        AddStatusParameters(cmd, filter);
        using var r = cmd.ExecuteReader();
        var list = new List<ExceptionItem>(Math.Min(limit, 1024));
        while (r.Read())
        {
            var id = r.GetInt64(0);
            var raisedAtMs = r.GetInt64(7);
            var row = ReadRow(r, 14);
            list.Add(new ExceptionItem("drift:" + id.ToString(CultureInfo.InvariantCulture), ExceptionSource.Drift, r.GetString(1),
                r.GetString(2), NullableString(r, 3), NullableString(r, 4), r.GetInt64(5), r.GetString(6), raisedAtMs,
                DateTimeOffset.FromUnixTimeMilliseconds(raisedAtMs), row?.Status ?? "open", row?.Assignee, row?.ResolvedAtMs, row)
            {
                RefId = id,
                Origin = NullableString(r, 8),
                Expected = r.IsDBNull(9) ? null : r.GetInt64(9),
                Reported = r.IsDBNull(10) ? null : r.GetInt64(10),
                Reference = NullableString(r, 11),
                Occurrences = r.GetInt64(12),
                LastSeenAtMs = r.GetInt64(13),
            });
        }
        return list;
    }

    /// <summary>
    /// Channel dead letters, and those with workflow state that were replayed or discarded since (resolved, derived from
    /// the outbox), in (dead-letter time, channel, SKU) order after the given position.
    /// </summary>
    public List<ExceptionItem> ReadChannelExceptionItems(ExceptionFilter filter, long afterMs, string? afterChannel, string? afterSku, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        // A workflow row whose incident time differs from the dead letter's belongs to an earlier failure of the same
        // (channel, SKU): the current dead letter is a new incident and starts open.
        cmd.CommandText = $"""
            SELECT u.channel_id, u.sku, u.ats, u.error, u.t, u.status, u.assignee, u.row_version, u.row_raised, u.row_status, u.row_assignee
            FROM (
                SELECT s.channel_id AS channel_id, s.sku AS sku, s.ats AS ats, s.last_error AS error, COALESCE(s.dead_at_ms, 0) AS t,
                    CASE WHEN w.exception_key IS NULL OR w.raised_at_ms <> COALESCE(s.dead_at_ms, 0) THEN 'open' ELSE w.status END AS status,
                    CASE WHEN w.exception_key IS NULL OR w.raised_at_ms <> COALESCE(s.dead_at_ms, 0) THEN NULL ELSE w.assignee END AS assignee,
                    w.version AS row_version, w.raised_at_ms AS row_raised, w.status AS row_status, w.assignee AS row_assignee
                FROM channel_sync s LEFT JOIN exception_workflow w ON w.exception_key = 'channel:' || s.channel_id || ':' || s.sku
                WHERE s.dead = 1
                UNION ALL
                SELECT w.channel_id, w.sku, COALESCE(s.ats, 0), s.last_error, w.raised_at_ms, 'resolved', w.assignee,
                    w.version, w.raised_at_ms, w.status, w.assignee
                FROM exception_workflow w LEFT JOIN channel_sync s ON s.channel_id = w.channel_id AND s.sku = w.sku
                WHERE w.source = 'channel' AND (s.dead IS NULL OR s.dead = 0)
            ) u
            WHERE (u.t > @p1 OR (u.t = @p1 AND (u.channel_id > @p2 OR (u.channel_id = @p2 AND u.sku > @p3))))
                AND (@p4 IS NULL OR u.sku = @p4) AND (@p5 IS NULL OR u.channel_id = @p5) AND (@p6 IS NULL OR u.assignee = @p6)
                AND {string.Format(CultureInfo.InvariantCulture, StatusCondition, "u.status")}
            ORDER BY u.t, u.channel_id, u.sku LIMIT @p7
            """;
        AddParameters(cmd, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, afterMs, afterChannel, afterSku ?? "", filter.Sku, filter.ChannelId, filter.Assignee, limit);
        AddStatusParameters(cmd, filter);
        using var r = cmd.ExecuteReader();
        var list = new List<ExceptionItem>(Math.Min(limit, 1024));
        while (r.Read())
        {
            var channelId = r.GetString(0);
            var sku = r.GetString(1);
            var t = LongAt(r, 4);
            var status = r.GetString(5);
            WorkflowRow? row = r.IsDBNull(7) ? null : new WorkflowRow(LongAt(r, 7), LongAt(r, 8), r.GetString(9), NullableString(r, 10), null);
            var detail = status == "resolved"
                ? "The dead letter was replayed or discarded."
                : NullableString(r, 3) ?? "The channel refused the publication.";
            list.Add(new ExceptionItem(ChannelKey(channelId, sku), ExceptionSource.Channel, ChannelDeadLetterKind, sku, null, channelId,
                LongAt(r, 2), detail, t, DateTimeOffset.FromUnixTimeMilliseconds(t), status, NullableString(r, 6), null, row)
            {
                IsDeadLetter = true,
            });
        }
        return list;
    }

    /// <summary>
    /// ERP dead letters, and those with workflow state that were replayed or discarded since (resolved, derived from the
    /// outbox; resolved at the posting time when the replay was posted), in (dead-letter time, ledger id) order.
    /// </summary>
    public List<ExceptionItem> ReadErpExceptionItems(ExceptionFilter filter, long afterMs, long afterId, long? exactId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT u.ledger_id, u.sku, u.location_id, u.event_id, u.type, u.quantity, u.error, u.t, u.status, u.assignee, u.resolved_at_ms,
                u.row_version, u.row_raised, u.row_status, u.row_assignee
            FROM (
                SELECT o.ledger_id AS ledger_id, l.sku AS sku, l.location_id AS location_id, l.event_id AS event_id, l.type AS type,
                    l.quantity AS quantity, o.error AS error, COALESCE(o.dead_at_ms, 0) AS t,
                    CASE WHEN w.exception_key IS NULL OR w.raised_at_ms <> COALESCE(o.dead_at_ms, 0) THEN 'open' ELSE w.status END AS status,
                    CASE WHEN w.exception_key IS NULL OR w.raised_at_ms <> COALESCE(o.dead_at_ms, 0) THEN NULL ELSE w.assignee END AS assignee,
                    CAST(NULL AS BIGINT) AS resolved_at_ms,
                    w.version AS row_version, w.raised_at_ms AS row_raised, w.status AS row_status, w.assignee AS row_assignee
                FROM erp_outbox o JOIN ledger l ON l.id = o.ledger_id
                    LEFT JOIN exception_workflow w ON w.exception_key = 'erp:' || CAST(o.ledger_id AS TEXT)
                WHERE o.status = 'dead'
                UNION ALL
                SELECT w.ref_id, l.sku, l.location_id, l.event_id, l.type, l.quantity, o.error, w.raised_at_ms, 'resolved', w.assignee,
                    CASE WHEN o.status = 'posted' THEN o.posted_at_ms ELSE NULL END,
                    w.version, w.raised_at_ms, w.status, w.assignee
                FROM exception_workflow w JOIN ledger l ON l.id = w.ref_id LEFT JOIN erp_outbox o ON o.ledger_id = w.ref_id
                WHERE w.source = 'erp' AND (o.status IS NULL OR o.status <> 'dead')
            ) u
            WHERE (u.t > @p1 OR (u.t = @p1 AND u.ledger_id > @p2)) AND (@p3 IS NULL OR u.ledger_id = @p3)
                AND (@p4 IS NULL OR u.sku = @p4) AND (@p5 IS NULL OR u.location_id = @p5) AND (@p6 IS NULL OR u.assignee = @p6)
                AND {string.Format(CultureInfo.InvariantCulture, StatusCondition, "u.status")}
            ORDER BY u.t, u.ledger_id LIMIT @p7
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, afterMs, afterId, exactId, filter.Sku, filter.LocationId, filter.Assignee, limit);
        AddStatusParameters(cmd, filter);
        using var r = cmd.ExecuteReader();
        var list = new List<ExceptionItem>(Math.Min(limit, 1024));
        while (r.Read())
        {
            var ledgerId = LongAt(r, 0);
            var t = LongAt(r, 7);
            var status = r.GetString(8);
            WorkflowRow? row = r.IsDBNull(11) ? null : new WorkflowRow(LongAt(r, 11), LongAt(r, 12), r.GetString(13), NullableString(r, 14), null);
            var detail = status == "resolved"
                ? "The dead letter was replayed or discarded."
                : NullableString(r, 6) ?? "The ERP refused the movement.";
            list.Add(new ExceptionItem("erp:" + ledgerId.ToString(CultureInfo.InvariantCulture), ExceptionSource.Erp, ErpDeadLetterKind,
                r.GetString(1), r.GetString(2), null, LongAt(r, 5), detail, t, DateTimeOffset.FromUnixTimeMilliseconds(t), status,
                NullableString(r, 9), r.IsDBNull(10) ? null : LongAt(r, 10), row)
            {
                RefId = ledgerId,
                EventId = NullableString(r, 3),
                MovementType = r.GetString(4),
                IsDeadLetter = true,
            });
        }
        return list;
    }

    /// <summary>The recorded time of an engine exception (for cursors of the list before the merge), or null.</summary>
    public DateTimeOffset? ReadEngineExceptionTime(long id)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT recorded_at FROM exceptions WHERE id = @p1";
        AddParameters(cmd, DbType.Int64);
        Bind(cmd, id);
        return cmd.ExecuteScalar() is string text ? ParseTime(text) : null;
    }

    /// <summary>Writes a workflow change and its audit row in one transaction; false when a concurrent change came first.</summary>
    public bool ApplyExceptionChange(WorkflowChange change)
    {
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        int written;
        if (change.ExpectedVersion == 0)
        {
            using var insert = Command(c, tx, """
                INSERT INTO exception_workflow (exception_key, source, kind, ref_id, channel_id, sku, raised_at_ms, status, assignee,
                    resolved_at_ms, updated_at_ms, version)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, 1)
                ON CONFLICT (exception_key) DO NOTHING
                """, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.String, DbType.String, DbType.Int64, DbType.String,
                DbType.String, DbType.Int64, DbType.Int64);
            Bind(insert, change.Key, SourceName(change.Source), change.Kind, change.RefId, change.ChannelId, change.Sku, change.RaisedAtMs,
                change.Status, change.Assignee, change.ResolvedAtMs, change.AtMs);
            written = insert.ExecuteNonQuery();
        }
        else
        {
            using var update = Command(c, tx, """
                UPDATE exception_workflow SET raised_at_ms = @p3, status = @p4, assignee = @p5, resolved_at_ms = @p6, updated_at_ms = @p7,
                    version = version + 1
                WHERE exception_key = @p1 AND version = @p2
                """, DbType.String, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.Int64, DbType.Int64);
            Bind(update, change.Key, change.ExpectedVersion, change.RaisedAtMs, change.Status, change.Assignee, change.ResolvedAtMs, change.AtMs);
            written = update.ExecuteNonQuery();
        }
        if (written == 0)
        {
            tx.Rollback();
            return false;
        }
        using var history = Command(c, tx, """
            INSERT INTO exception_history (exception_key, version, at_ms, actor, action, kind, raised_at_ms, from_status, to_status,
                assignee_changed, from_assignee, to_assignee, note_author, note_text)
            VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p14)
            """, DbType.String, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.String,
            DbType.String, DbType.Int32, DbType.String, DbType.String, DbType.String, DbType.String);
        Bind(history, change.Key, change.ExpectedVersion + 1, change.AtMs, change.Actor, change.Action, change.Kind, change.RaisedAtMs,
            change.FromStatus, change.ToStatus, change.AssigneeChanged ? 1 : 0, change.FromAssignee, change.ToAssignee, change.NoteAuthor,
            change.NoteText);
        history.ExecuteNonQuery();
        tx.Commit();
        return true;
    }

    /// <summary>The newest <paramref name="limit"/> audit rows of an exception, oldest first.</summary>
    public List<ExceptionHistoryRow> ReadExceptionHistory(string key, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT version, at_ms, actor, action, raised_at_ms, from_status, to_status, assignee_changed, from_assignee, to_assignee,
                note_author, note_text
            FROM exception_history WHERE exception_key = @p1 ORDER BY version DESC LIMIT @p2
            """;
        AddParameters(cmd, DbType.String, DbType.Int32);
        Bind(cmd, key, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ExceptionHistoryRow>();
        while (r.Read())
        {
            list.Add(new ExceptionHistoryRow(LongAt(r, 0), LongAt(r, 1), r.GetString(2), r.GetString(3), LongAt(r, 4), NullableString(r, 5),
                NullableString(r, 6), LongAt(r, 7) == 1, NullableString(r, 8), NullableString(r, 9), NullableString(r, 10), NullableString(r, 11)));
        }
        list.Reverse();
        return list;
    }

    /// <summary>The newest note and the note count of every incident of the given exceptions (one query for a page).</summary>
    public Dictionary<string, List<NoteSummary>> ReadNoteSummaries(IReadOnlyList<string> keys)
    {
        var found = new Dictionary<string, List<NoteSummary>>(StringComparer.Ordinal);
        if (keys.Count == 0)
        {
            return found;
        }
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        var names = new string[keys.Count];
        for (var i = 0; i < keys.Count; i++)
        {
            names[i] = "@p" + (i + 1).ToString(CultureInfo.InvariantCulture);
        }
        cmd.CommandText = $"""
            SELECT h.exception_key, h.raised_at_ms, h.note_author, h.note_text, h.at_ms, h.actor,
                (SELECT COUNT(*) FROM exception_history n
                 WHERE n.exception_key = h.exception_key AND n.action = 'note' AND n.raised_at_ms = h.raised_at_ms)
            FROM exception_history h
            WHERE h.exception_key IN ({string.Join(", ", names)}) AND h.action = 'note'
                AND h.version = (SELECT MAX(m.version) FROM exception_history m
                                 WHERE m.exception_key = h.exception_key AND m.action = 'note' AND m.raised_at_ms = h.raised_at_ms)
            """;
        AddParameters(cmd, Enumerable.Repeat(DbType.String, keys.Count).ToArray());
        Bind(cmd, [.. keys]);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var key = r.GetString(0);
            if (!found.TryGetValue(key, out var list))
            {
                found[key] = list = [];
            }
            list.Add(new NoteSummary(LongAt(r, 1), LongAt(r, 6), r.GetString(2), r.GetString(3), LongAt(r, 4), r.GetString(5)));
        }
        return found;
    }

    /// <summary>
    /// Stores a drift exception and returns its id. With a dedupe key, an unresolved drift of the same key is updated
    /// instead (quantity, figures, detail, last seen, occurrences) and its id returned with <c>Repeated</c> true.
    /// </summary>
    public (long Id, bool Repeated) InsertDriftException(DriftInsert d)
    {
        lock (_raiseLock)
        {
            using var c = OpenReader();
            using var tx = c.BeginTransaction();
            if (d.DedupeKey is not null)
            {
                using var find = Command(c, tx, """
                    SELECT d.id FROM drift_exceptions d LEFT JOIN exception_workflow w ON w.exception_key = 'drift:' || CAST(d.id AS TEXT)
                    WHERE d.dedupe_key = @p1 AND COALESCE(w.status, 'open') <> 'resolved'
                    ORDER BY d.id DESC LIMIT 1
                    """, DbType.String);
                Bind(find, d.DedupeKey);
                if (find.ExecuteScalar() is { } existing and not DBNull)
                {
                    var id = Convert.ToInt64(existing, CultureInfo.InvariantCulture);
                    using var update = Command(c, tx, """
                        UPDATE drift_exceptions SET quantity = @p2, expected = @p3, reported = @p4, detail = @p5, reference = @p6,
                            last_seen_at_ms = @p7, occurrences = occurrences + 1
                        WHERE id = @p1
                        """, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.Int64);
                    Bind(update, id, d.Quantity, d.Expected, d.Reported, d.Detail, d.Reference, d.AtMs);
                    update.ExecuteNonQuery();
                    tx.Commit();
                    return (id, true);
                }
            }
            var next = ScalarLong(c, "SELECT COALESCE(MAX(id), 0) + 1 FROM drift_exceptions", tx);
            using var insert = Command(c, tx, """
                INSERT INTO drift_exceptions (id, kind, sku, location_id, channel_id, quantity, expected, reported, system, reference,
                    dedupe_key, detail, raised_at_ms, last_seen_at_ms, occurrences)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p13, 1)
                """, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64,
                DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int64);
            Bind(insert, next, d.Kind, d.Sku, d.LocationId, d.ChannelId, d.Quantity, d.Expected, d.Reported, d.System, d.Reference,
                d.DedupeKey, d.Detail, d.AtMs);
            insert.ExecuteNonQuery();
            tx.Commit();
            return (next, false);
        }
    }

    /// <summary>
    /// Drift by bucket, channel and location over [fromMs, toMs): how many drift exceptions were raised, their absolute
    /// units and their signed (net) units. At most <paramref name="limit"/> rows.
    /// </summary>
    public List<DriftReportRow> ReadDriftReport(long fromMs, long toMs, long bucketMs, string? channelId, string? locationId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT (raised_at_ms / @p3) * @p3, channel_id, location_id, COUNT(*), SUM(ABS(quantity)), SUM(quantity)
            FROM drift_exceptions
            WHERE raised_at_ms >= @p1 AND raised_at_ms < @p2 AND (@p4 IS NULL OR channel_id = @p4) AND (@p5 IS NULL OR location_id = @p5)
            GROUP BY 1, 2, 3 LIMIT @p6
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, fromMs, toMs, bucketMs, channelId, locationId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<DriftReportRow>();
        while (r.Read())
        {
            list.Add(new DriftReportRow(LongAt(r, 0), NullableString(r, 1), NullableString(r, 2), LongAt(r, 3), LongAt(r, 4), LongAt(r, 5)));
        }
        return list;
    }

    /// <summary>
    /// Oversells by bucket and location over [from, to): count and units. The journal stores times as UTC round-trip text,
    /// so the first 10 (day) or 13 (hour) characters are the bucket and text order is time order.
    /// </summary>
    public List<OversellReportRow> ReadOversellReport(DateTimeOffset from, DateTimeOffset to, int bucketLength, string? locationId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT substr(recorded_at, 1, @p3), location_id, COUNT(*), SUM(quantity)
            FROM exceptions
            WHERE type = 'oversell' AND recorded_at >= @p1 AND recorded_at < @p2 AND (@p4 IS NULL OR location_id = @p4)
            GROUP BY 1, 2 LIMIT @p5
            """;
        AddParameters(cmd, DbType.String, DbType.String, DbType.Int32, DbType.String, DbType.Int32);
        Bind(cmd, Text(from.ToUniversalTime()), Text(to.ToUniversalTime()), bucketLength, locationId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<OversellReportRow>();
        while (r.Read())
        {
            list.Add(new OversellReportRow(r.GetString(0), NullableString(r, 1), LongAt(r, 2), LongAt(r, 3)));
        }
        return list;
    }

    /// <summary>Resolutions recorded in the audit trail over [fromMs, toMs), oldest first; at most <paramref name="limit"/>.</summary>
    public List<ResolutionRow> ReadResolutions(long fromMs, long toMs, string? kind, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT at_ms, raised_at_ms, kind FROM exception_history
            WHERE to_status = 'resolved' AND at_ms >= @p1 AND at_ms < @p2 AND (@p3 IS NULL OR kind = @p3)
            ORDER BY at_ms LIMIT @p4
            """;
        AddParameters(cmd, DbType.Int64, DbType.Int64, DbType.String, DbType.Int32);
        Bind(cmd, fromMs, toMs, kind, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ResolutionRow>();
        while (r.Read())
        {
            list.Add(new ResolutionRow(LongAt(r, 0), LongAt(r, 1), r.GetString(2)));
        }
        return list;
    }

    /// <summary>The key of a channel dead letter.</summary>
    internal static string ChannelKey(string channelId, string sku) => "channel:" + channelId + ":" + sku;

    internal static string SourceName(ExceptionSource source) => source switch
    {
        ExceptionSource.Engine => "engine",
        ExceptionSource.Drift => "drift",
        ExceptionSource.Channel => "channel",
        _ => "erp",
    };

    private static WorkflowRow? ReadRow(DbDataReader r, int first) => r.IsDBNull(first)
        ? null
        : new WorkflowRow(LongAt(r, first), LongAt(r, first + 1), r.GetString(first + 2), NullableString(r, first + 3),
            r.IsDBNull(first + 4) ? null : LongAt(r, first + 4));

    private static void AddStatusParameters(DbCommand cmd, ExceptionFilter filter)
    {
        foreach (var (name, on) in new[] { ("@s1", filter.Open), ("@s2", filter.Acknowledged), ("@s3", filter.Resolved) })
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.DbType = DbType.Int32;
            p.Value = on ? 1 : 0;
            cmd.Parameters.Add(p);
        }
    }

    // PostgreSQL answers SUM over BIGINT as NUMERIC and SQLite may answer small numbers as Int32, so every number is converted.
    private static long LongAt(DbDataReader r, int i) => Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);
}
