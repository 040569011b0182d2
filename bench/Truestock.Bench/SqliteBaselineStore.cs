using System.Data.Common;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;

namespace Truestock.Bench;

/// <summary>
/// The baseline on a SQLite file with the same settings as the hub's journal (WAL,
/// synchronous=FULL, so every commit is fsync'd). SQLite has no row locks: its write lock covers
/// the whole file. Writers here queue on an in-process semaphore for it instead of spinning in
/// SQLite's busy handler (which sleeps between retries); that is the fastest way to run this
/// design on SQLite, so the comparison is fair to the baseline. The one writer connection keeps
/// every statement prepared. Reads use pooled connections and run in parallel (WAL readers).
/// </summary>
internal sealed class SqliteBaselineStore : BaselineStore
{
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly SqliteConnection _writer;
    private readonly string _readerConnectionString;

    /// <summary>The writer's prepared commands, by statement; only the writer, which holds the semaphore, touches it.</summary>
    private readonly Dictionary<BaselineStatement, DbCommand> _prepared = [];

    private SqliteBaselineStore(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var cs = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 60 };
        _readerConnectionString = cs.ToString();
        _writer = new SqliteConnection(_readerConnectionString);
        _writer.Open();
        // The same settings as the hub's journal: WAL, and FULL so that every commit is fsync'd.
        Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=60000;");
        Exec(BaselineSql.Schema("INTEGER", "INTEGER PRIMARY KEY"));
    }

    public static async Task<BaselineStore> Open(string path)
    {
        var store = new SqliteBaselineStore(path);
        await store.LoadChannels();
        return store;
    }

    public override void Dispose()
    {
        foreach (var cmd in _prepared.Values)
        {
            cmd.Dispose();
        }
        _writer.Dispose();
        _write.Dispose();
    }

    protected override async Task<IResult> Write(Func<BaselineCommands, ValueTask<Outcome>> work)
    {
        await _write.WaitAsync();
        try
        {
            using var tx = _writer.BeginTransaction();
            var outcome = await work(new WriterCommands(this, tx));
            if (outcome.Commit)
            {
                tx.Commit();
            }
            else
            {
                tx.Rollback();
            }
            return outcome.Result;
        }
        finally
        {
            _write.Release();
        }
    }

    protected override async Task<T> Read<T>(Func<BaselineCommands, ValueTask<T>> work)
    {
        using var c = new SqliteConnection(_readerConnectionString);
        c.Open();
        return await work(new BaselineCommands(c, null));
    }

    /// <summary>SQLite has no array parameter: the SKUs travel as one JSON array, unpacked by json_each.</summary>
    protected override (BaselineStatement Statement, object Skus) AvailableOfSkus(string[] skus) =>
        (AvailableOfSkusStatement, JsonSerializer.Serialize(skus));

    private static readonly BaselineStatement AvailableOfSkusStatement =
        new("SELECT sku, loc, on_hand - reserved - damaged FROM stock WHERE sku IN (SELECT value FROM json_each(@skus))", "@skus");

    private void Exec(string sql)
    {
        using var cmd = _writer.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>The writer's statements, prepared once and kept for every later request.</summary>
    private sealed class WriterCommands(SqliteBaselineStore store, SqliteTransaction tx) : BaselineCommands(store._writer, tx)
    {
        protected override DbCommand Create(BaselineStatement statement)
        {
            if (!store._prepared.TryGetValue(statement, out var cmd))
            {
                cmd = base.Create(statement);
                // Microsoft.Data.Sqlite wants the pending transaction on every command of the connection.
                cmd.Transaction = tx;
                cmd.Prepare();
                store._prepared[statement] = cmd;
            }
            return cmd;
        }

        protected override void Return(DbCommand cmd)
        {
            // Kept prepared for the next request; disposed with the store.
        }
    }
}
