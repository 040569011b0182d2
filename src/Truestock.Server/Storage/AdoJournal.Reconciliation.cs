using System.Data;
using System.Data.Common;
using System.Globalization;

namespace Truestock.Server.Storage;

/// <summary>A stored reconciliation snapshot (table <c>recon_snapshots</c>).</summary>
internal sealed record ReconSnapshotRecord(
    long SnapshotId, string System, string SystemId, DateTimeOffset AsOf, string Scope, DateTimeOffset UploadedAt, string CorrelationId,
    long Rows, long Invalid, string State);

/// <summary>One row of a snapshot: a position (or, for a channel, a SKU with location "") and the quantity the system reports.</summary>
internal readonly record struct ReconRow(string Sku, string LocationId, long Line, long Quantity, long? Damaged, long? Inspection, decimal? UnitCost);

/// <summary>A stored reconciliation run (table <c>recon_runs</c>).</summary>
internal sealed record ReconRunRecord(
    long RunId, long SnapshotId, string System, string SystemId, DateTimeOffset AsOf, string Origin, DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt, string State, long Compared, long Matched, long Unknown, long Variances, long OverThreshold,
    long UnitsAbsolute, string? Error);

/// <summary>One variance a run found (table <c>recon_variances</c>).</summary>
internal sealed record ReconVarianceRecord(
    long RunId, long VarianceNo, string Sku, string? LocationId, string? ChannelId, long? Expected, long Reported, long? Difference,
    decimal? UnitCost, decimal? Value, string Cause, string? CauseDetail, bool OverThreshold, string Repair, long? ProposalId,
    string? ExceptionRef);

/// <summary>A proposed count waiting for, or decided by, an operator (table <c>recon_proposals</c>).</summary>
internal sealed record ReconProposalRecord(
    long ProposalId, long RunId, long VarianceNo, string Sku, string LocationId, string EventType, long Quantity, DateTimeOffset OccurredAt,
    string EventId, string State, DateTimeOffset CreatedAt, DateTimeOffset? DecidedAt, string? DecidedBy, string? ApiKey, string? Reason,
    string? EventStatus, string? EventError);

/// <summary>A ledger row of one position with the on-hand change it made, for the causes of a variance.</summary>
internal readonly record struct PositionMovement(
    long LedgerId, string? EventId, string Type, long Quantity, DateTimeOffset OccurredAt, DateTimeOffset RecordedAt, string Status,
    string Source, long OnHandDelta);

/// <summary>The publication state of one (channel, SKU), for the causes of a channel variance.</summary>
internal readonly record struct ChannelSyncState(long Ats, long? PublishedAts, long? PublishedAtMs, bool Pending, bool Dead, string? LastError);

/// <summary>
/// Reconciliation's tables (migration 5; see docs/reconciliation.md). Only the writer hub writes them, outside the
/// engine's batches: snapshots, runs and proposals are operator data about the ledger, never part of it, so they
/// need no place in the replay log. Ids are allocated under one lock per journal, which is enough because one
/// process is the writer.
/// </summary>
internal abstract partial class AdoJournal
{
    private readonly Lock _reconIds = new();

    // ------------------------------------------------------------------ snapshots

    /// <summary>Creates a snapshot in state <c>loading</c>; its rows follow in batches.</summary>
    public long CreateReconSnapshot(string system, string systemId, DateTimeOffset asOf, string scope, DateTimeOffset uploadedAt, string correlationId)
    {
        lock (_reconIds)
        {
            using var c = OpenReader();
            var id = ScalarLong(c, "SELECT COALESCE(MAX(snapshot_id), 0) FROM recon_snapshots") + 1;
            using var cmd = Command(c, null, """
                INSERT INTO recon_snapshots (snapshot_id, system_kind, system_id, as_of, scope, uploaded_at, correlation_id, row_count, invalid_count, state)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, 0, 0, 'loading')
                """, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String);
            Bind(cmd, id, system, systemId, Utc(asOf), scope, Utc(uploadedAt), correlationId);
            cmd.ExecuteNonQuery();
            return id;
        }
    }

    /// <summary>
    /// Stores a batch of rows in one transaction. Returns the indexes (into <paramref name="rows"/>) of rows whose
    /// SKU and location the snapshot already had: those are not stored.
    /// </summary>
    public List<int> InsertReconRows(long snapshotId, IReadOnlyList<ReconRow> rows)
    {
        var repeated = new List<int>();
        if (rows.Count == 0)
        {
            return repeated;
        }
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        using var insert = Command(c, tx, """
            INSERT INTO recon_snapshot_rows (snapshot_id, sku, location_id, line_no, quantity, damaged, inspection, unit_cost)
            VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8) ON CONFLICT (snapshot_id, sku, location_id) DO NOTHING
            """, DbType.Int64, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String);
        insert.Prepare();
        for (var i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            Bind(insert, snapshotId, r.Sku, r.LocationId, r.Line, r.Quantity, r.Damaged, r.Inspection, DecimalText(r.UnitCost));
            if (insert.ExecuteNonQuery() == 0)
            {
                repeated.Add(i);
            }
        }
        tx.Commit();
        return repeated;
    }

    /// <summary>Marks a snapshot <c>complete</c> with its counts.</summary>
    public void FinishReconSnapshot(long snapshotId, long rows, long invalid)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, "UPDATE recon_snapshots SET row_count = @p2, invalid_count = @p3, state = 'complete' WHERE snapshot_id = @p1",
            DbType.Int64, DbType.Int64, DbType.Int64);
        Bind(cmd, snapshotId, rows, invalid);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Deletes a snapshot and its rows (an upload refused as a whole leaves nothing behind).</summary>
    public void DeleteReconSnapshot(long snapshotId)
    {
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        foreach (var sql in new[] { "DELETE FROM recon_snapshot_rows WHERE snapshot_id = @p1", "DELETE FROM recon_snapshots WHERE snapshot_id = @p1" })
        {
            using var cmd = Command(c, tx, sql, DbType.Int64);
            Bind(cmd, snapshotId);
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
    }

    private const string SnapshotColumns = "snapshot_id, system_kind, system_id, as_of, scope, uploaded_at, correlation_id, row_count, invalid_count, state";

    /// <summary>One snapshot, or null.</summary>
    public ReconSnapshotRecord? ReadReconSnapshot(long snapshotId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"SELECT {SnapshotColumns} FROM recon_snapshots WHERE snapshot_id = @p1", DbType.Int64);
        Bind(cmd, snapshotId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Snapshot(r) : null;
    }

    /// <summary>The newest complete snapshot of a system, or null.</summary>
    public ReconSnapshotRecord? ReadLatestReconSnapshot(string system, string systemId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"""
            SELECT {SnapshotColumns} FROM recon_snapshots WHERE system_kind = @p1 AND system_id = @p2 AND state = 'complete'
            ORDER BY snapshot_id DESC LIMIT 1
            """, DbType.String, DbType.String);
        Bind(cmd, system, systemId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Snapshot(r) : null;
    }

    private static ReconSnapshotRecord Snapshot(DbDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), r.GetString(2), ParseTime(r.GetString(3)), r.GetString(4), ParseTime(r.GetString(5)), r.GetString(6),
            r.GetInt64(7), r.GetInt64(8), r.GetString(9));

    /// <summary>Rows of a snapshot in (sku, location) order after the given key: one page of a run.</summary>
    public List<ReconRow> ReadReconRows(long snapshotId, string afterSku, string afterLocation, int limit)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            SELECT sku, location_id, line_no, quantity, damaged, inspection, unit_cost FROM recon_snapshot_rows
            WHERE snapshot_id = @p1 AND (sku > @p2 OR (sku = @p2 AND location_id > @p3))
            ORDER BY sku, location_id LIMIT @p4
            """, DbType.Int64, DbType.String, DbType.String, DbType.Int32);
        Bind(cmd, snapshotId, afterSku, afterLocation, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ReconRow>(Math.Min(limit, 4096));
        while (r.Read())
        {
            list.Add(new ReconRow(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4),
                r.IsDBNull(5) ? null : r.GetInt64(5), ParseDecimal(NullableString(r, 6))));
        }
        return list;
    }

    /// <summary>The distinct locations a snapshot's rows name.</summary>
    public List<string> ReadReconSnapshotLocations(long snapshotId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, "SELECT DISTINCT location_id FROM recon_snapshot_rows WHERE snapshot_id = @p1 ORDER BY location_id", DbType.Int64);
        Bind(cmd, snapshotId);
        using var r = cmd.ExecuteReader();
        var list = new List<string>();
        while (r.Read())
        {
            list.Add(r.GetString(0));
        }
        return list;
    }

    /// <summary>Which of the given SKUs (up to a few hundred) have at least one row in the snapshot, with their locations.</summary>
    public HashSet<(string Sku, string LocationId)> FindReconRows(long snapshotId, IReadOnlyList<string> skus)
    {
        var found = new HashSet<(string, string)>();
        if (skus.Count == 0)
        {
            return found;
        }
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        var names = new string[skus.Count];
        for (var i = 0; i < skus.Count; i++)
        {
            names[i] = "@p" + (i + 2).ToString(CultureInfo.InvariantCulture);
        }
        cmd.CommandText = $"SELECT sku, location_id FROM recon_snapshot_rows WHERE snapshot_id = @p1 AND sku IN ({string.Join(", ", names)})";
        AddParameters(cmd, [DbType.Int64, .. Enumerable.Repeat(DbType.String, skus.Count)]);
        Bind(cmd, [snapshotId, .. skus]);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            found.Add((r.GetString(0), r.GetString(1)));
        }
        return found;
    }

    // ------------------------------------------------------------------ runs and variances

    /// <summary>Creates a run in state <c>running</c>.</summary>
    public long CreateReconRun(ReconSnapshotRecord snapshot, string origin, DateTimeOffset startedAt)
    {
        lock (_reconIds)
        {
            using var c = OpenReader();
            var id = ScalarLong(c, "SELECT COALESCE(MAX(run_id), 0) FROM recon_runs") + 1;
            using var cmd = Command(c, null, """
                INSERT INTO recon_runs (run_id, snapshot_id, system_kind, system_id, as_of, origin, started_at, finished_at, state,
                    compared, matched, unknown_count, variance_count, over_threshold, units_absolute, error)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, NULL, 'running', 0, 0, 0, 0, 0, 0, NULL)
                """, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String);
            Bind(cmd, id, snapshot.SnapshotId, snapshot.System, snapshot.SystemId, Utc(snapshot.AsOf), origin, Utc(startedAt));
            cmd.ExecuteNonQuery();
            return id;
        }
    }

    /// <summary>Ends a run (<c>finished</c> or <c>failed</c>) with its counts.</summary>
    public void FinishReconRun(long runId, string state, DateTimeOffset finishedAt, long compared, long matched, long unknown, long variances,
        long overThreshold, long unitsAbsolute, string? error)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            UPDATE recon_runs SET state = @p2, finished_at = @p3, compared = @p4, matched = @p5, unknown_count = @p6, variance_count = @p7,
                over_threshold = @p8, units_absolute = @p9, error = @p10
            WHERE run_id = @p1
            """, DbType.Int64, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int64,
            DbType.String);
        Bind(cmd, runId, state, Utc(finishedAt), compared, matched, unknown, variances, overThreshold, unitsAbsolute, error);
        cmd.ExecuteNonQuery();
    }

    private const string RunColumns = """
        run_id, snapshot_id, system_kind, system_id, as_of, origin, started_at, finished_at, state, compared, matched, unknown_count,
        variance_count, over_threshold, units_absolute, error
        """;

    /// <summary>One run, or null.</summary>
    public ReconRunRecord? ReadReconRun(long runId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"SELECT {RunColumns} FROM recon_runs WHERE run_id = @p1", DbType.Int64);
        Bind(cmd, runId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Run(r) : null;
    }

    /// <summary>Runs newest first, before <paramref name="beforeId"/>, optionally of one snapshot.</summary>
    public List<ReconRunRecord> ReadReconRuns(long? snapshotId, long beforeId, int limit)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"""
            SELECT {RunColumns} FROM recon_runs WHERE (@p1 IS NULL OR snapshot_id = @p1) AND run_id < @p2 ORDER BY run_id DESC LIMIT @p3
            """, DbType.Int64, DbType.Int64, DbType.Int32);
        Bind(cmd, snapshotId, beforeId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ReconRunRecord>();
        while (r.Read())
        {
            list.Add(Run(r));
        }
        return list;
    }

    private static ReconRunRecord Run(DbDataReader r) =>
        new(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), ParseTime(r.GetString(4)), r.GetString(5), ParseTime(r.GetString(6)),
            r.IsDBNull(7) ? null : ParseTime(r.GetString(7)), r.GetString(8), r.GetInt64(9), r.GetInt64(10), r.GetInt64(11), r.GetInt64(12),
            r.GetInt64(13), r.GetInt64(14), NullableString(r, 15));

    /// <summary>
    /// Stores a run's variances and the counts proposed for some of them, in one transaction. A variance whose
    /// <see cref="ReconVarianceRecord.ProposalId"/> is -1 gets a new proposal (from <paramref name="proposals"/>, same
    /// index), so that the proposal and the variance naming it are written together. Returns the variances as stored.
    /// </summary>
    public List<ReconVarianceRecord> InsertReconVariances(IReadOnlyList<ReconVarianceRecord> variances,
        IReadOnlyDictionary<int, ReconProposalRecord> proposals)
    {
        var stored = new List<ReconVarianceRecord>(variances.Count);
        if (variances.Count == 0)
        {
            return stored;
        }
        lock (_reconIds)
        {
            using var c = OpenReader();
            using var tx = c.BeginTransaction();
            var nextProposal = ScalarLong(c, "SELECT COALESCE(MAX(proposal_id), 0) FROM recon_proposals", tx) + 1;
            using var insertVariance = Command(c, tx, """
                INSERT INTO recon_variances (run_id, variance_no, sku, location_id, channel_id, expected, reported, difference, unit_cost, value_text,
                    cause, cause_detail, over_threshold, repair, proposal_id, exception_ref)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p14, @p15, @p16)
                """, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String,
                DbType.String, DbType.String, DbType.String, DbType.Int32, DbType.String, DbType.Int64, DbType.String);
            using var insertProposal = Command(c, tx, """
                INSERT INTO recon_proposals (proposal_id, run_id, variance_no, sku, location_id, event_type, quantity, occurred_at, event_id, state,
                    created_at, decided_at, decided_by, api_key, reason, event_status, event_error)
                VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, 'proposed', @p10, NULL, NULL, NULL, NULL, NULL, NULL)
                """, DbType.Int64, DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.String,
                DbType.String, DbType.String);
            for (var i = 0; i < variances.Count; i++)
            {
                var v = variances[i];
                if (v.ProposalId == -1 && proposals.TryGetValue(i, out var p))
                {
                    var id = nextProposal++;
                    // The event id is derived from the proposal id, so approving twice can only ever apply one event.
                    var eventId = ProposalEventId(id);
                    Bind(insertProposal, id, p.RunId, v.VarianceNo, p.Sku, p.LocationId, p.EventType, p.Quantity, Utc(p.OccurredAt), eventId,
                        Utc(p.CreatedAt));
                    insertProposal.ExecuteNonQuery();
                    v = v with { ProposalId = id };
                }
                Bind(insertVariance, v.RunId, v.VarianceNo, v.Sku, v.LocationId, v.ChannelId, v.Expected, v.Reported, v.Difference,
                    DecimalText(v.UnitCost), DecimalText(v.Value), v.Cause, v.CauseDetail, v.OverThreshold ? 1 : 0, v.Repair, v.ProposalId,
                    v.ExceptionRef);
                insertVariance.ExecuteNonQuery();
                stored.Add(v);
            }
            tx.Commit();
        }
        return stored;
    }

    /// <summary>The eventId a proposal's event is applied with: "recon-proposal-" and the proposal id.</summary>
    public static string ProposalEventId(long proposalId) => "recon-proposal-" + proposalId.ToString(CultureInfo.InvariantCulture);

    /// <summary>Variances of a run in order, after <paramref name="afterNo"/>; only those over (or under) the threshold when <paramref name="overThreshold"/> is set.</summary>
    public List<ReconVarianceRecord> ReadReconVariances(long runId, long afterNo, int limit, bool? overThreshold = null)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            SELECT run_id, variance_no, sku, location_id, channel_id, expected, reported, difference, unit_cost, value_text, cause, cause_detail,
                over_threshold, repair, proposal_id, exception_ref
            FROM recon_variances WHERE run_id = @p1 AND variance_no > @p2 AND (@p4 IS NULL OR over_threshold = @p4) ORDER BY variance_no LIMIT @p3
            """, DbType.Int64, DbType.Int64, DbType.Int32, DbType.Int32);
        Bind(cmd, runId, afterNo, limit, overThreshold is null ? null : overThreshold.Value ? 1 : 0);
        using var r = cmd.ExecuteReader();
        var list = new List<ReconVarianceRecord>();
        while (r.Read())
        {
            list.Add(new ReconVarianceRecord(r.GetInt64(0), r.GetInt64(1), r.GetString(2), NullableString(r, 3), NullableString(r, 4),
                r.IsDBNull(5) ? null : r.GetInt64(5), r.GetInt64(6), r.IsDBNull(7) ? null : r.GetInt64(7), ParseDecimal(NullableString(r, 8)),
                ParseDecimal(NullableString(r, 9)), r.GetString(10), NullableString(r, 11), r.GetInt32(12) == 1, r.GetString(13),
                r.IsDBNull(14) ? null : r.GetInt64(14), NullableString(r, 15)));
        }
        return list;
    }

    /// <summary>Records what the exceptions workflow answered for an over-threshold variance.</summary>
    public void SetReconVarianceException(long runId, long varianceNo, string exceptionRef)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, "UPDATE recon_variances SET exception_ref = @p3 WHERE run_id = @p1 AND variance_no = @p2",
            DbType.Int64, DbType.Int64, DbType.String);
        Bind(cmd, runId, varianceNo, exceptionRef);
        cmd.ExecuteNonQuery();
    }

    // ------------------------------------------------------------------ proposals

    private const string ProposalColumns = """
        proposal_id, run_id, variance_no, sku, location_id, event_type, quantity, occurred_at, event_id, state, created_at, decided_at,
        decided_by, api_key, reason, event_status, event_error
        """;

    /// <summary>One proposal, or null.</summary>
    public ReconProposalRecord? ReadReconProposal(long proposalId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"SELECT {ProposalColumns} FROM recon_proposals WHERE proposal_id = @p1", DbType.Int64);
        Bind(cmd, proposalId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Proposal(r) : null;
    }

    /// <summary>Proposals in id order after <paramref name="afterId"/>, optionally in one state.</summary>
    public List<ReconProposalRecord> ReadReconProposals(string? state, long afterId, int limit)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, $"""
            SELECT {ProposalColumns} FROM recon_proposals WHERE (@p1 IS NULL OR state = @p1) AND proposal_id > @p2 ORDER BY proposal_id LIMIT @p3
            """, DbType.String, DbType.Int64, DbType.Int32);
        Bind(cmd, state, afterId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<ReconProposalRecord>();
        while (r.Read())
        {
            list.Add(Proposal(r));
        }
        return list;
    }

    private static ReconProposalRecord Proposal(DbDataReader r) =>
        new(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt64(6), ParseTime(r.GetString(7)),
            r.GetString(8), r.GetString(9), ParseTime(r.GetString(10)), r.IsDBNull(11) ? null : ParseTime(r.GetString(11)), NullableString(r, 12),
            NullableString(r, 13), NullableString(r, 14), NullableString(r, 15), NullableString(r, 16));

    /// <summary>
    /// Moves a proposal from <paramref name="from"/> to <paramref name="to"/> and records who decided, when and why.
    /// Returns false when the proposal was not in <paramref name="from"/> (another decision got there first).
    /// </summary>
    public bool DecideReconProposal(long proposalId, string from, string to, DateTimeOffset decidedAt, string decidedBy, string? apiKey,
        string? reason, string? eventStatus, string? eventError)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            UPDATE recon_proposals SET state = @p3, decided_at = @p4, decided_by = @p5, api_key = @p6, reason = @p7, event_status = @p8, event_error = @p9
            WHERE proposal_id = @p1 AND state = @p2
            """, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String);
        Bind(cmd, proposalId, from, to, Utc(decidedAt), decidedBy, apiKey, reason, eventStatus, eventError);
        return cmd.ExecuteNonQuery() == 1;
    }

    // ------------------------------------------------------------------ what the ledger can tell about a variance

    /// <summary>
    /// The newest ledger rows of a position (at most <paramref name="limit"/>), oldest first, each with the on-hand
    /// change it made (its on-hand after minus the previous row's; every on-hand change has a ledger row).
    /// </summary>
    public List<PositionMovement> ReadRecentMovements(string sku, string locationId, int limit)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            SELECT id, event_id, type, quantity, occurred_at, recorded_at, status, source, on_hand_after FROM ledger
            WHERE sku = @p1 AND location_id = @p2 ORDER BY id DESC LIMIT @p3
            """, DbType.String, DbType.String, DbType.Int32);
        // One row more than asked for, so that the oldest row returned has a previous on-hand to subtract.
        Bind(cmd, sku, locationId, limit + 1);
        using var r = cmd.ExecuteReader();
        var rows = new List<(long Id, string? EventId, string Type, long Quantity, string OccurredAt, string RecordedAt, string Status, string Source, long After)>();
        while (r.Read())
        {
            rows.Add((r.GetInt64(0), NullableString(r, 1), r.GetString(2), r.GetInt64(3), r.GetString(4), r.GetString(5), r.GetString(6),
                r.GetString(7), r.GetInt64(8)));
        }
        rows.Reverse();
        var list = new List<PositionMovement>(rows.Count);
        var start = rows.Count > limit ? 1 : 0;
        for (var i = start; i < rows.Count; i++)
        {
            var x = rows[i];
            var before = i == 0 ? 0 : rows[i - 1].After;
            list.Add(new PositionMovement(x.Id, x.EventId, x.Type, x.Quantity, ParseTime(x.OccurredAt), ParseTime(x.RecordedAt), x.Status, x.Source,
                x.After - before));
        }
        return list;
    }

    /// <summary>The movements of a position that the ERP outbox holds as pending or dead, with their on-hand changes.</summary>
    public List<(PositionMovement Movement, string ErpStatus)> ReadUnpostedErpMovements(string sku, string locationId)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            SELECT l.id, l.event_id, l.type, l.quantity, l.occurred_at, l.recorded_at, l.status, l.source, l.on_hand_after, o.status,
                (SELECT p.on_hand_after FROM ledger p WHERE p.sku = l.sku AND p.location_id = l.location_id AND p.id < l.id ORDER BY p.id DESC LIMIT 1)
            FROM ledger l JOIN erp_outbox o ON o.ledger_id = l.id
            WHERE l.sku = @p1 AND l.location_id = @p2 AND o.status IN ('pending', 'dead')
            ORDER BY l.id
            """, DbType.String, DbType.String);
        Bind(cmd, sku, locationId);
        using var r = cmd.ExecuteReader();
        var list = new List<(PositionMovement, string)>();
        while (r.Read())
        {
            var after = r.GetInt64(8);
            var before = r.IsDBNull(10) ? 0 : r.GetInt64(10);
            list.Add((new PositionMovement(r.GetInt64(0), NullableString(r, 1), r.GetString(2), r.GetInt64(3), ParseTime(r.GetString(4)),
                ParseTime(r.GetString(5)), r.GetString(6), r.GetString(7), after - before), r.GetString(9)));
        }
        return list;
    }

    /// <summary>The publication state of one (channel, SKU), or null when the outbox has no row for it.</summary>
    public ChannelSyncState? ReadChannelSyncState(string channelId, string sku)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            SELECT ats, published_ats, published_at_ms, pending, dead, last_error FROM channel_sync WHERE channel_id = @p1 AND sku = @p2
            """, DbType.String, DbType.String);
        Bind(cmd, channelId, sku);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ChannelSyncState(r.GetInt64(0), r.IsDBNull(1) ? null : r.GetInt64(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.GetInt32(3) == 1,
                r.GetInt32(4) == 1, NullableString(r, 5))
            : null;
    }

    /// <summary>
    /// Puts a (channel, SKU) back in the publication queue so that the publisher sends its latest ATS again: a dead
    /// letter is revived, a published row becomes pending. A SKU the outbox has no row for gets one with
    /// <paramref name="ats"/> at <paramref name="version"/> (the engine's applied sequence number, so that the
    /// channel's acknowledgement is recorded). What the hub believed the channel shows is forgotten (the snapshot says
    /// otherwise), so the publisher cannot skip the call, and the published version is moved just below the row's
    /// version, so that the acknowledgement of the same version settles the row. Coalescing still applies: the engine
    /// may replace the value before it is sent, and then the newest one goes.
    /// </summary>
    public void RequeueChannelSync(string channelId, string sku, long ats, long version, long nowMs)
    {
        using var c = OpenReader();
        using var cmd = Command(c, null, """
            INSERT INTO channel_sync (channel_id, sku, ats, version, changed_at_ms, pending, published_ats, published_version,
                published_at_ms, attempts, next_attempt_ms, dead, dead_at_ms, last_error)
            VALUES (@p1, @p2, @p3, @p4, @p5, 1, NULL, 0, NULL, 0, 0, 0, NULL, NULL)
            ON CONFLICT (channel_id, sku) DO UPDATE SET
                changed_at_ms = CASE WHEN channel_sync.pending = 1 THEN channel_sync.changed_at_ms ELSE excluded.changed_at_ms END,
                pending = 1, dead = 0, dead_at_ms = NULL, attempts = 0, next_attempt_ms = 0, published_ats = NULL,
                published_version = CASE WHEN channel_sync.published_version >= channel_sync.version THEN channel_sync.version - 1
                    ELSE channel_sync.published_version END
            """, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64);
        Bind(cmd, channelId, sku, ats, version, nowMs);
        cmd.ExecuteNonQuery();
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A time as UTC round-trip text, so that times written here compare as text.</summary>
    private static string Utc(DateTimeOffset t) => Text(t.ToUniversalTime());

    private static string? DecimalText(decimal? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static decimal? ParseDecimal(string? text) => text is null ? null : decimal.Parse(text, NumberStyles.Number, CultureInfo.InvariantCulture);
}
