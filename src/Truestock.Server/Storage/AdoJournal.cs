using System.Data;
using System.Data.Common;
using System.Globalization;
using System.IO.Compression;
using Truestock.Core;

namespace Truestock.Server.Storage;

/// <summary>
/// The durable journal over ADO.NET: sequenced commands (for replay), the ledger rows and
/// exceptions they produced, and periodic snapshots. The statements are portable SQL shared by
/// SQLite and PostgreSQL; a dialect supplies connections, the DDL and how a process becomes the
/// one writer. A batch is committed in one transaction and the engine answers only after it,
/// so a 2xx means fsync'd (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on).
/// </summary>
internal abstract partial class AdoJournal : IDisposable
{
    private const string SnapshotFormat = "json+gzip/v1";

    private DbConnection? _writer;
    private DbCommand? _insertCommand;
    private DbCommand? _insertLedger;
    private DbCommand? _insertException;
    private DbCommand? _insertEventId;
    private DbCommand? _insertReservationId;
    private DbCommand? _archiveReservation;
    private DbCommand? _upsertSync;
    private long _nextLedgerId;
    private long _nextExceptionId;

    /// <summary>Sequence number of the last committed command (valid while this process is the writer).</summary>
    public long LastSeq { get; private set; }

    /// <summary>A human-readable name of the store, for logs (never a password).</summary>
    public abstract string Description { get; }

    /// <summary>Forward-only migrations; index + 1 is the schema version.</summary>
    public abstract IReadOnlyList<string> Migrations { get; }

    /// <summary>Opens a connection for reads (pooled).</summary>
    protected abstract DbConnection OpenReader();

    /// <summary>Opens the writer's own connection (not pooled: it may carry a session lock).</summary>
    protected abstract DbConnection OpenWriterConnection();

    /// <summary>Serialises concurrent migrations of the same database inside <paramref name="tx"/>.</summary>
    protected virtual void LockSchema(DbConnection connection, DbTransaction tx)
    {
    }

    /// <summary>
    /// True when the database aborted a transaction that may simply be run again (a deadlock
    /// victim, a serialization failure): nothing of it was kept.
    /// </summary>
    public virtual bool IsRetryable(DbException error) => false;

    /// <summary>Tries to make this process the database's only writer on the writer connection.</summary>
    protected virtual bool TryLockWriter(DbConnection writer) => true;

    /// <summary>Opens the writer connection and applies pending migrations.</summary>
    public void Open()
    {
        DisposeWriter();
        _writer = OpenWriterConnection();
        Migrate(_writer);
    }

    /// <summary>
    /// Tries to become the writer. On success the counters are read from the database, so that
    /// appends continue exactly after what is committed, whoever wrote it.
    /// </summary>
    public bool TryBecomeWriter()
    {
        var writer = _writer ?? throw new InvalidOperationException("Open the journal first.");
        if (!TryLockWriter(writer))
        {
            return false;
        }
        LastSeq = ScalarLong(writer, "SELECT COALESCE(MAX(seq), 0) FROM commands");
        _nextLedgerId = ScalarLong(writer, "SELECT COALESCE(MAX(id), 0) FROM ledger") + 1;
        _nextExceptionId = ScalarLong(writer, "SELECT COALESCE(MAX(id), 0) FROM exceptions") + 1;
        _insertCommand = Prepare(writer, "INSERT INTO commands (seq, recorded_at, kind, payload) VALUES (@p1, @p2, @p3, @p4)",
            DbType.Int64, DbType.String, DbType.String, DbType.String);
        _insertLedger = Prepare(writer,
            "INSERT INTO ledger (id, command_seq, sku, location_id, event_id, reservation_id, type, quantity, occurred_at, recorded_at, status, source, correlation_id, on_hand_after, available_after) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p14, @p15)",
            DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int64,
            DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.Int64, DbType.Int64);
        _insertException = Prepare(writer,
            "INSERT INTO exceptions (id, command_seq, type, sku, location_id, event_id, reservation_id, source, quantity, detail, recorded_at) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11)",
            DbType.Int64, DbType.Int64, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String, DbType.String,
            DbType.Int64, DbType.String, DbType.String);
        _insertEventId = Prepare(writer, "INSERT INTO event_ids (event_id, fingerprint) VALUES (@p1, @p2)", DbType.String, DbType.String);
        _insertReservationId = Prepare(writer, "INSERT INTO reservation_ids (reservation_id, fingerprint) VALUES (@p1, @p2)", DbType.String, DbType.String);
        _archiveReservation = Prepare(writer, "UPDATE reservation_ids SET archived_view = @p2 WHERE reservation_id = @p1", DbType.String, DbType.String);
        _upsertSync = Prepare(writer, UpsertSyncSql, DbType.String, DbType.String, DbType.Int64, DbType.Int64, DbType.Int64, DbType.Int32);
        return true;
    }

    private void Migrate(DbConnection c)
    {
        using var tx = c.BeginTransaction();
        LockSchema(c, tx);
        Execute(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)", tx);
        var current = ScalarLong(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", tx);
        if (current > Migrations.Count)
        {
            throw new InvalidOperationException(
                $"{Description} has schema version {current}, newer than this build supports ({Migrations.Count}). Run a newer Truestock or restore a backup.");
        }
        for (var v = (int)current; v < Migrations.Count; v++)
        {
            Execute(c, Migrations[v], tx);
            using var mark = c.CreateCommand();
            mark.Transaction = tx;
            mark.CommandText = "INSERT INTO schema_version (version, applied_at) VALUES (@p1, @p2)";
            AddParameters(mark, DbType.Int32, DbType.String);
            Bind(mark, v + 1, Text(DateTimeOffset.UtcNow));
            mark.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>The full DDL, for DBAs who apply migrations themselves.</summary>
    public string MigrationScript()
    {
        var lines = new List<string>
        {
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL);",
        };
        for (var v = 0; v < Migrations.Count; v++)
        {
            lines.Add($"-- migration {v + 1}");
            lines.Add(Migrations[v].TrimEnd());
            lines.Add($"INSERT INTO schema_version (version, applied_at) VALUES ({v + 1}, CURRENT_TIMESTAMP) ON CONFLICT (version) DO NOTHING;");
        }
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>
    /// Appends one engine batch in one transaction: the commands, their ledger rows and exceptions.
    /// Returns once the transaction is committed and durable.
    /// </summary>
    public void Append(IReadOnlyList<PendingRecord> records, Effects effects, IReadOnlyList<(string Id, string ViewJson)> archived,
        IReadOnlyList<SyncChange>? syncChanges = null, DateTimeOffset batchTime = default)
    {
        var writer = _writer ?? throw new InvalidOperationException("The journal is not open for writing.");
        if (_insertCommand is null || _insertLedger is null || _insertException is null || _insertEventId is null
            || _insertReservationId is null || _archiveReservation is null || _upsertSync is null)
        {
            throw new InvalidOperationException("This process is not the writer.");
        }
        DbCommand[] statements = [_insertCommand, _insertLedger, _insertException, _insertEventId, _insertReservationId, _archiveReservation, _upsertSync];
        var batch = new JournalBatch(records, effects, archived, syncChanges ?? [], batchTime, LastSeq, _nextLedgerId, _nextExceptionId, ErpPostingEnabled);
        // Prepared before the transaction starts: SQLite refuses to prepare on a connection inside one.
        var erpOutbox = ErpPostingEnabled ? PrepareErpOutbox(writer) : null;
        using var tx = writer.BeginTransaction();
        if (AppendBulk(writer, tx, batch))
        {
            tx.Commit();
            LastSeq += records.Count;
            _nextLedgerId += batch.LedgerCount;
            _nextExceptionId += batch.ExceptionCount;
            return;
        }
        try
        {
            foreach (var statement in statements)
            {
                statement.Transaction = tx;
            }
            var seq = LastSeq;
            var nextLedger = _nextLedgerId;
            var nextException = _nextExceptionId;
            foreach (var r in records)
            {
                seq++;
                Bind(_insertCommand, seq, Text(r.RecordedAt), r.Kind, r.Payload);
                _insertCommand.ExecuteNonQuery();
                for (var i = r.LedgerFrom; i < r.LedgerTo; i++)
                {
                    var e = effects.Ledger[i];
                    Bind(_insertLedger, nextLedger++, seq, e.Sku, e.LocationId, e.EventId, e.ReservationId, e.Type, e.Quantity,
                        Text(e.OccurredAt), Text(e.RecordedAt), e.Status, e.Source, e.CorrelationId, e.OnHandAfter, e.AvailableAfter);
                    _insertLedger.ExecuteNonQuery();
                }
                for (var i = r.ExceptionsFrom; i < r.ExceptionsTo; i++)
                {
                    var x = effects.Exceptions[i];
                    Bind(_insertException, nextException++, seq, x.Type, x.Sku, x.LocationId, x.EventId, x.ReservationId, x.Source,
                        x.Quantity, x.Detail, Text(x.RecordedAt));
                    _insertException.ExecuteNonQuery();
                }
            }
            // Every accepted id is kept durably, so that it stays a duplicate after memory forgets it.
            foreach (var (eventId, fingerprint) in effects.AcceptedEvents)
            {
                Bind(_insertEventId, eventId, FingerprintText(fingerprint));
                _insertEventId.ExecuteNonQuery();
            }
            foreach (var r in effects.CreatedReservations)
            {
                Bind(_insertReservationId, r.Id, FingerprintText(r.Fingerprint));
                _insertReservationId.ExecuteNonQuery();
            }
            foreach (var (id, view) in archived)
            {
                Bind(_archiveReservation, id, view);
                _archiveReservation.ExecuteNonQuery();
            }
            // The channel outbox is written in the same transaction as the change, so a crash can
            // never lose a publication: what is committed is either published or still pending.
            if (syncChanges is { Count: > 0 })
            {
                var changedAtMs = batchTime.ToUnixTimeMilliseconds();
                foreach (var change in syncChanges)
                {
                    Bind(_upsertSync, change.ChannelId, change.Sku, change.Ats, seq, changedAtMs, change.Force ? 1 : 0);
                    _upsertSync.ExecuteNonQuery();
                }
            }
            // ERP postings are queued in the same transaction as their ledger rows, so a crash can never lose one.
            if (erpOutbox is not null)
            {
                AppendErpOutbox(erpOutbox, tx, records, effects, _nextLedgerId, batchTime);
            }
            tx.Commit();
            LastSeq = seq;
            _nextLedgerId = nextLedger;
            _nextExceptionId = nextException;
        }
        finally
        {
            foreach (var statement in statements)
            {
                statement.Transaction = null;
            }
        }
    }

    /// <summary>
    /// Writes the whole batch inside <paramref name="tx"/> with the dialect's bulk statements and
    /// returns true, or returns false to have it written row by row with the prepared statements.
    /// The rows must be exactly those of the row-by-row path: the same ids, in the same order.
    /// </summary>
    protected virtual bool AppendBulk(DbConnection writer, DbTransaction tx, in JournalBatch batch) => false;

    /// <summary>The fingerprints of those of <paramref name="eventIds"/> that were ever accepted.</summary>
    public Dictionary<string, Fingerprint> FindEventFingerprints(IReadOnlyList<string> eventIds)
    {
        var found = new Dictionary<string, Fingerprint>(StringComparer.Ordinal);
        if (eventIds.Count == 0)
        {
            return found;
        }
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        var names = new string[eventIds.Count];
        for (var i = 0; i < eventIds.Count; i++)
        {
            names[i] = "@p" + (i + 1).ToString(CultureInfo.InvariantCulture);
        }
        cmd.CommandText = $"SELECT event_id, fingerprint FROM event_ids WHERE event_id IN ({string.Join(", ", names)})";
        AddParameters(cmd, Enumerable.Repeat(DbType.String, eventIds.Count).ToArray());
        Bind(cmd, [.. eventIds]);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            found[r.GetString(0)] = ParseFingerprint(r.GetString(1));
        }
        return found;
    }

    /// <summary>The fingerprint a reservation id was created with, and its final state once archived.</summary>
    public (Fingerprint Fingerprint, string? ArchivedView)? FindReservation(string reservationId)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT fingerprint, archived_view FROM reservation_ids WHERE reservation_id = @p1";
        AddParameters(cmd, DbType.String);
        Bind(cmd, reservationId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (ParseFingerprint(r.GetString(0)), NullableString(r, 1)) : null;
    }

    protected static string FingerprintText(Fingerprint f) =>
        f.Hi.ToString("x16", CultureInfo.InvariantCulture) + f.Lo.ToString("x16", CultureInfo.InvariantCulture);

    private static Fingerprint ParseFingerprint(string s) =>
        new(ulong.Parse(s.AsSpan(0, 16), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            ulong.Parse(s.AsSpan(16, 16), NumberStyles.HexNumber, CultureInfo.InvariantCulture));

    /// <summary>Reads commands after <paramref name="afterSeq"/> in order, streaming.</summary>
    public IEnumerable<JournalRecord> ReadCommands(long afterSeq)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT seq, recorded_at, kind, payload FROM commands WHERE seq > @p1 ORDER BY seq";
        AddParameters(cmd, DbType.Int64);
        Bind(cmd, afterSeq);
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            yield return new JournalRecord(reader.GetInt64(0), ParseTime(reader.GetString(1)), reader.GetString(2), reader.GetString(3));
        }
    }

    /// <summary>Stores a snapshot taken after command <paramref name="lastSeq"/> and keeps only the newest two.</summary>
    public void WriteSnapshot(long lastSeq, DateTimeOffset takenAt, ReadOnlySpan<byte> json)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(json);
        }
        using var c = OpenReader();
        using var tx = c.BeginTransaction();
        using (var insert = c.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO snapshots (last_seq, taken_at, format, data) VALUES (@p1, @p2, @p3, @p4) ON CONFLICT (last_seq) DO NOTHING";
            AddParameters(insert, DbType.Int64, DbType.String, DbType.String, DbType.Binary);
            Bind(insert, lastSeq, Text(takenAt), SnapshotFormat, buffer.ToArray());
            insert.ExecuteNonQuery();
        }
        Execute(c, "DELETE FROM snapshots WHERE last_seq < (SELECT MIN(last_seq) FROM (SELECT last_seq FROM snapshots ORDER BY last_seq DESC LIMIT 2) AS newest)", tx);
        tx.Commit();
    }

    /// <summary>The newest snapshot as JSON, or null.</summary>
    public (long LastSeq, byte[] Json)? ReadLatestSnapshot()
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT last_seq, format, data FROM snapshots ORDER BY last_seq DESC LIMIT 1";
        using var reader = cmd.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }
        var format = reader.GetString(1);
        if (format != SnapshotFormat)
        {
            throw new InvalidOperationException($"Snapshot format '{format}' is not supported by this build.");
        }
        using var input = reader.GetStream(2);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        gzip.CopyTo(output);
        return (reader.GetInt64(0), output.ToArray());
    }

    /// <summary>The highest committed sequence number, whoever wrote it.</summary>
    public long ReadMaxSeq()
    {
        using var c = OpenReader();
        return ScalarLong(c, "SELECT COALESCE(MAX(seq), 0) FROM commands");
    }

    public List<StoredLedgerEntry> ReadLedger(string sku, string locationId, long afterId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT id, event_id, reservation_id, type, quantity, occurred_at, recorded_at, status, source, correlation_id, on_hand_after, available_after
            FROM ledger WHERE sku = @p1 AND location_id = @p2 AND id > @p3 ORDER BY id LIMIT @p4
            """;
        AddParameters(cmd, DbType.String, DbType.String, DbType.Int64, DbType.Int32);
        Bind(cmd, sku, locationId, afterId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<StoredLedgerEntry>(Math.Min(limit, 1024));
        while (r.Read())
        {
            list.Add(new StoredLedgerEntry(r.GetInt64(0), NullableString(r, 1), NullableString(r, 2), r.GetString(3), r.GetInt64(4),
                ParseTime(r.GetString(5)), ParseTime(r.GetString(6)), r.GetString(7), r.GetString(8), r.GetString(9), r.GetInt64(10), r.GetInt64(11)));
        }
        return list;
    }

    public List<StoredException> ReadExceptions(string? type, long afterId, int limit)
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT id, type, sku, location_id, event_id, reservation_id, source, quantity, detail, recorded_at
            FROM exceptions WHERE (@p1 IS NULL OR type = @p1) AND id > @p2 ORDER BY id LIMIT @p3
            """;
        AddParameters(cmd, DbType.String, DbType.Int64, DbType.Int32);
        Bind(cmd, type, afterId, limit);
        using var r = cmd.ExecuteReader();
        var list = new List<StoredException>(Math.Min(limit, 1024));
        while (r.Read())
        {
            list.Add(new StoredException(r.GetInt64(0), r.GetString(1), NullableString(r, 2), NullableString(r, 3), NullableString(r, 4),
                NullableString(r, 5), NullableString(r, 6), r.GetInt64(7), r.GetString(8), ParseTime(r.GetString(9))));
        }
        return list;
    }

    /// <summary>Checks that the database answers (for readiness).</summary>
    public void Ping()
    {
        using var c = OpenReader();
        ScalarLong(c, "SELECT 1");
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            DisposeWriter();
        }
    }

    /// <summary>Lets a dialect give up the writer role explicitly before its connection closes.</summary>
    protected virtual void ReleaseWriter(DbConnection writer)
    {
    }

    private void DisposeWriter()
    {
        if (_writer is { State: System.Data.ConnectionState.Open } open && _insertCommand is not null)
        {
            ReleaseWriter(open);
        }
        foreach (var statement in new[] { _insertCommand, _insertLedger, _insertException, _insertEventId, _insertReservationId, _archiveReservation, _upsertSync })
        {
            statement?.Dispose();
        }
        _writer?.Dispose();
        _insertCommand = _insertLedger = _insertException = _insertEventId = _insertReservationId = _archiveReservation = _upsertSync = null;
        DisposeErpOutbox();
        _writer = null;
    }

    internal static string Text(DateTimeOffset t) => t.ToString("O", CultureInfo.InvariantCulture);

    internal static DateTimeOffset ParseTime(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    private static string? NullableString(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static DbCommand Prepare(DbConnection c, string sql, params DbType[] types)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        AddParameters(cmd, types);
        cmd.Prepare();
        return cmd;
    }

    private static void AddParameters(DbCommand cmd, params DbType[] types)
    {
        for (var i = 0; i < types.Length; i++)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = "@p" + (i + 1).ToString(CultureInfo.InvariantCulture);
            p.DbType = types[i];
            p.Value = DBNull.Value;
            cmd.Parameters.Add(p);
        }
    }

    private static void Bind(DbCommand cmd, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }

    protected static void Execute(DbConnection c, string sql, DbTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    protected static long ScalarLong(DbConnection c, string sql, DbTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}

/// <summary>A command decided in the current batch, waiting to be journaled with the slice of effects it produced.</summary>
internal readonly record struct PendingRecord(
    DateTimeOffset RecordedAt, string Kind, string Payload, int LedgerFrom, int LedgerTo, int ExceptionsFrom, int ExceptionsTo);

/// <summary>
/// One engine batch as the journal writes it: the commands with their slices of effects, and the
/// first sequence number and ids the batch's rows take (the last ones committed, plus one).
/// </summary>
internal readonly record struct JournalBatch(
    IReadOnlyList<PendingRecord> Records,
    Effects Effects,
    IReadOnlyList<(string Id, string ViewJson)> Archived,
    IReadOnlyList<SyncChange> SyncChanges,
    DateTimeOffset BatchTime,
    long LastSeq,
    long FirstLedgerId,
    long FirstExceptionId,
    bool ErpPosting)
{
    public int LedgerCount => Count(static r => r.LedgerTo - r.LedgerFrom);

    public int ExceptionCount => Count(static r => r.ExceptionsTo - r.ExceptionsFrom);

    /// <summary>
    /// The batch's rows of one kind (ledger rows, exceptions) with the ids they take, numbered from
    /// <paramref name="firstId"/> in record order, and the sequence number of the command that made each.
    /// </summary>
    public List<(long Id, long Seq, T Row)> Numbered<T>(IReadOnlyList<T> rows, long firstId, Func<PendingRecord, (int From, int To)> slice)
    {
        var numbered = new List<(long Id, long Seq, T Row)>();
        var id = firstId;
        var seq = LastSeq;
        foreach (var r in Records)
        {
            seq++;
            var (from, to) = slice(r);
            for (var i = from; i < to; i++)
            {
                numbered.Add((id++, seq, rows[i]));
            }
        }
        return numbered;
    }

    private int Count(Func<PendingRecord, int> of)
    {
        var n = 0;
        foreach (var r in Records)
        {
            n += of(r);
        }
        return n;
    }
}
