using System.Globalization;
using System.IO.Compression;
using Microsoft.Data.Sqlite;
using Truestock.Core;

namespace Truestock.Server.Storage;

/// <summary>
/// The durable journal on SQLite: sequenced commands (for replay), the ledger rows and exceptions
/// they produced, and periodic snapshots. WAL with synchronous=FULL, so a committed batch is
/// fsync'd before the engine answers. The SQL is kept portable (no SQLite-only syntax in
/// queries) so that a PostgreSQL journal can implement the same statements.
/// </summary>
internal sealed class SqliteJournal : IDisposable
{
    /// <summary>Forward-only migrations; index + 1 is the schema version.</summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE commands (
            seq BIGINT NOT NULL PRIMARY KEY,
            recorded_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL);
        CREATE TABLE ledger (
            id BIGINT NOT NULL PRIMARY KEY,
            command_seq BIGINT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NOT NULL,
            event_id TEXT NULL,
            reservation_id TEXT NULL,
            type TEXT NOT NULL,
            quantity BIGINT NOT NULL,
            occurred_at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            on_hand_after BIGINT NOT NULL,
            available_after BIGINT NOT NULL);
        CREATE INDEX ix_ledger_position ON ledger (sku, location_id, id);
        CREATE INDEX ix_ledger_event ON ledger (event_id);
        CREATE TABLE exceptions (
            id BIGINT NOT NULL PRIMARY KEY,
            command_seq BIGINT NOT NULL,
            type TEXT NOT NULL,
            sku TEXT NULL,
            location_id TEXT NULL,
            event_id TEXT NULL,
            reservation_id TEXT NULL,
            source TEXT NULL,
            quantity BIGINT NOT NULL,
            detail TEXT NOT NULL,
            recorded_at TEXT NOT NULL);
        CREATE INDEX ix_exceptions_type ON exceptions (type, id);
        CREATE TABLE snapshots (
            last_seq BIGINT NOT NULL PRIMARY KEY,
            taken_at TEXT NOT NULL,
            format TEXT NOT NULL,
            data BLOB NOT NULL);
        """,
    ];

    private readonly string _connectionString;
    private readonly SqliteConnection _writer;
    private readonly SqliteCommand _insertCommand;
    private readonly SqliteCommand _insertLedger;
    private readonly SqliteCommand _insertException;
    private long _nextLedgerId;
    private long _nextExceptionId;

    public SqliteJournal(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Path_ = path;
        _writer = Open();
        Execute(_writer, "PRAGMA journal_mode=WAL;");
        Migrate();
        _nextLedgerId = ScalarLong(_writer, "SELECT COALESCE(MAX(id), 0) FROM ledger") + 1;
        _nextExceptionId = ScalarLong(_writer, "SELECT COALESCE(MAX(id), 0) FROM exceptions") + 1;
        LastSeq = ScalarLong(_writer, "SELECT COALESCE(MAX(seq), 0) FROM commands");

        _insertCommand = Prepare(_writer, "INSERT INTO commands (seq, recorded_at, kind, payload) VALUES ($1, $2, $3, $4)", 4);
        _insertLedger = Prepare(_writer,
            "INSERT INTO ledger (id, command_seq, sku, location_id, event_id, reservation_id, type, quantity, occurred_at, recorded_at, status, source, correlation_id, on_hand_after, available_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)", 15);
        _insertException = Prepare(_writer,
            "INSERT INTO exceptions (id, command_seq, type, sku, location_id, event_id, reservation_id, source, quantity, detail, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", 11);
    }

    public string Path_ { get; }

    /// <summary>Sequence number of the last committed command.</summary>
    public long LastSeq { get; private set; }

    public int SchemaVersion => Migrations.Length;

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        // FULL makes every commit fsync the WAL: a 2xx answer means the write survives a power cut.
        Execute(c, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;");
        return c;
    }

    private void Migrate()
    {
        Execute(_writer, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)");
        var current = ScalarLong(_writer, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
        if (current > Migrations.Length)
        {
            throw new InvalidOperationException(
                $"The data file '{Path_}' has schema version {current}, newer than this build supports ({Migrations.Length}). Run a newer Truestock or restore a backup.");
        }
        for (var v = (int)current; v < Migrations.Length; v++)
        {
            using var tx = _writer.BeginTransaction();
            Execute(_writer, Migrations[v], tx);
            using var mark = _writer.CreateCommand();
            mark.Transaction = tx;
            mark.CommandText = "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)";
            mark.Parameters.AddWithValue("$1", v + 1);
            mark.Parameters.AddWithValue("$2", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            mark.ExecuteNonQuery();
            tx.Commit();
        }
    }

    /// <summary>
    /// Appends one engine batch in one transaction: the commands, their ledger rows and exceptions.
    /// Returns once the transaction is committed and fsync'd.
    /// </summary>
    public void Append(IReadOnlyList<PendingRecord> records, Effects effects)
    {
        using var tx = _writer.BeginTransaction();
        try
        {
            _insertCommand.Transaction = tx;
            _insertLedger.Transaction = tx;
            _insertException.Transaction = tx;
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
            tx.Commit();
            LastSeq = seq;
            _nextLedgerId = nextLedger;
            _nextExceptionId = nextException;
        }
        finally
        {
            _insertCommand.Transaction = null;
            _insertLedger.Transaction = null;
            _insertException.Transaction = null;
        }
    }

    /// <summary>Reads commands after <paramref name="afterSeq"/> in order, streaming.</summary>
    public IEnumerable<JournalRecord> ReadCommands(long afterSeq)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT seq, recorded_at, kind, payload FROM commands WHERE seq > $1 ORDER BY seq";
        cmd.Parameters.AddWithValue("$1", afterSeq);
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
        using var c = Open();
        using var tx = c.BeginTransaction();
        using (var insert = c.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO snapshots (last_seq, taken_at, format, data) VALUES ($1, $2, $3, $4) ON CONFLICT (last_seq) DO NOTHING";
            Bind(insert, lastSeq, Text(takenAt), "json+gzip/v1", buffer.ToArray());
            insert.ExecuteNonQuery();
        }
        using (var prune = c.CreateCommand())
        {
            prune.Transaction = tx;
            prune.CommandText = "DELETE FROM snapshots WHERE last_seq < (SELECT MIN(last_seq) FROM (SELECT last_seq FROM snapshots ORDER BY last_seq DESC LIMIT 2) AS newest)";
            prune.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>The newest snapshot as JSON, or null.</summary>
    public (long LastSeq, byte[] Json)? ReadLatestSnapshot()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT last_seq, format, data FROM snapshots ORDER BY last_seq DESC LIMIT 1";
        using var reader = cmd.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }
        var format = reader.GetString(1);
        if (format != "json+gzip/v1")
        {
            throw new InvalidOperationException($"Snapshot format '{format}' is not supported by this build.");
        }
        using var input = reader.GetStream(2);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        gzip.CopyTo(output);
        return (reader.GetInt64(0), output.ToArray());
    }

    public List<StoredLedgerEntry> ReadLedger(string sku, string locationId, long afterId, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT id, event_id, reservation_id, type, quantity, occurred_at, recorded_at, status, source, correlation_id, on_hand_after, available_after
            FROM ledger WHERE sku = $1 AND location_id = $2 AND id > $3 ORDER BY id LIMIT $4
            """;
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
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT id, type, sku, location_id, event_id, reservation_id, source, quantity, detail, recorded_at
            FROM exceptions WHERE ($1 IS NULL OR type = $1) AND id > $2 ORDER BY id LIMIT $3
            """;
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
        using var c = Open();
        ScalarLong(c, "SELECT 1");
    }

    public void Dispose()
    {
        _insertCommand.Dispose();
        _insertLedger.Dispose();
        _insertException.Dispose();
        _writer.Dispose();
    }

    internal static string Text(DateTimeOffset t) => t.ToString("O", CultureInfo.InvariantCulture);

    internal static DateTimeOffset ParseTime(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    private static string? NullableString(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static SqliteCommand Prepare(SqliteConnection c, string sql, int parameters)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        for (var i = 1; i <= parameters; i++)
        {
            cmd.Parameters.Add(new SqliteParameter("$" + i.ToString(CultureInfo.InvariantCulture), null));
        }
        cmd.Prepare();
        return cmd;
    }

    private static void Bind(SqliteCommand cmd, params object?[] values)
    {
        if (cmd.Parameters.Count == 0)
        {
            for (var i = 0; i < values.Length; i++)
            {
                cmd.Parameters.AddWithValue("$" + (i + 1).ToString(CultureInfo.InvariantCulture), values[i] ?? DBNull.Value);
            }
            return;
        }
        for (var i = 0; i < values.Length; i++)
        {
            cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }

    private static void Execute(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static long ScalarLong(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}

/// <summary>A command decided in the current batch, waiting to be journaled with the slice of effects it produced.</summary>
internal readonly record struct PendingRecord(
    DateTimeOffset RecordedAt, string Kind, string Payload, int LedgerFrom, int LedgerTo, int ExceptionsFrom, int ExceptionsTo);
