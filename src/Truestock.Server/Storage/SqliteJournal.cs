using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Truestock.Server.Storage;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so every committed
/// batch is fsync'd. One process owns the file; it is always the writer.
/// </summary>
internal sealed class SqliteJournal : AdoJournal
{
    /// <summary>Page cache of the writer connection (SQLite's negative cache_size is in KiB).</summary>
    internal const int WriterCacheKibibytesMax = 64 * 1024;

    private static readonly string[] Schema = JournalSchema.Migrations("BLOB");
    private readonly string _path;
    private readonly string _connectionString;
    private FileStream? _writerLock;

    public SqliteJournal(string path)
    {
        _path = path;
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
    }

    public override string Description => $"SQLite file '{_path}'";

    public override IReadOnlyList<string> Migrations => Schema;

    protected override DbConnection OpenReader() => Connect();

    protected override DbConnection OpenWriterConnection()
    {
        var c = Connect();
        // The writer's page cache holds the index pages that every batch touches (ledger, event ids,
        // outbox); SQLite's default of 2 MB is far smaller than those indexes at a few million rows,
        // so without this most inserts read their B-tree page from the file again.
        Execute(c, $"PRAGMA journal_mode=WAL; PRAGMA cache_size=-{WriterCacheKibibytesMax};");
        return c;
    }

    /// <summary>
    /// Two processes must never both decide on one file (each would sell the same units). The
    /// writer holds an exclusive lock on "FILE.lock" for its lifetime; a second hub on the same
    /// file cannot take it and runs as a read-only standby until the first one exits.
    /// </summary>
    protected override bool TryLockWriter(DbConnection writer)
    {
        if (_writerLock is not null)
        {
            return true;
        }
        try
        {
            _writerLock = new FileStream(_path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _writerLock?.Dispose();
            _writerLock = null;
        }
        base.Dispose(disposing);
    }

    private SqliteConnection Connect()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        // FULL makes every commit fsync the WAL: a 2xx answer means the write survives a power cut.
        Execute(c, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
        return c;
    }
}
