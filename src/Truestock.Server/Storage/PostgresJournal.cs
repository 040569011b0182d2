using System.Data.Common;
using Npgsql;

namespace Truestock.Server.Storage;

/// <summary>
/// The production store on PostgreSQL. Commits are durable with the server's default
/// synchronous_commit=on. Exactly one hub writes to a database: the writer holds a session-level
/// advisory lock on its own unpooled connection, and appends on that same connection, so a
/// writer whose session died cannot append any more; other hubs run as hot standbys.
/// </summary>
internal sealed class PostgresJournal(string connectionString) : AdoJournal
{
    /// <summary>Advisory lock keys: one for the writer role, one for migrations ("TRUESTOCK" in ASCII, and +1).</summary>
    public const long WriterLockKey = 0x5452_5545_5354_4F43;
    private const long SchemaLockKey = WriterLockKey + 1;

    /// <summary>40P01 deadlock detected, 40001 serialization failure: the transaction was rolled back whole.</summary>
    public override bool IsRetryable(DbException error) =>
        error is PostgresException { SqlState: "40P01" or "40001" };

    private static readonly string[] Schema = JournalSchema.Migrations("BYTEA");
    private readonly string _readerConnectionString = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = true }.ToString();
    private readonly string _writerConnectionString = new NpgsqlConnectionStringBuilder(connectionString)
    {
        Pooling = false,
        // Broken connections are found quickly, so a writer cut off from the database stops acknowledging.
        KeepAlive = 5,
        TcpKeepAlive = true,
    }.ToString();

    public override string Description
    {
        get
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString);
            return $"PostgreSQL database '{b.Database}' on {b.Host}:{b.Port}";
        }
    }

    public override IReadOnlyList<string> Migrations => Schema;

    protected override DbConnection OpenReader()
    {
        var c = new NpgsqlConnection(_readerConnectionString);
        c.Open();
        return c;
    }

    protected override DbConnection OpenWriterConnection()
    {
        var c = new NpgsqlConnection(_writerConnectionString);
        c.Open();
        return c;
    }

    protected override void LockSchema(DbConnection connection, DbTransaction tx)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"SELECT pg_advisory_xact_lock({SchemaLockKey})";
        cmd.ExecuteNonQuery();
    }

    protected override void ReleaseWriter(DbConnection writer)
    {
        // The session's end would release the lock too, but only once the server has noticed; unlocking
        // first hands the writer role over at once on a graceful stop.
        try
        {
            using var cmd = writer.CreateCommand();
            cmd.CommandText = $"SELECT pg_advisory_unlock({WriterLockKey})";
            cmd.ExecuteNonQuery();
        }
        catch (NpgsqlException)
        {
            // The connection is already broken: the server ends the session and releases the lock itself.
        }
    }

    protected override bool TryLockWriter(DbConnection writer)
    {
        using var cmd = writer.CreateCommand();
        cmd.CommandText = $"SELECT pg_try_advisory_lock({WriterLockKey})";
        return cmd.ExecuteScalar() is true;
    }
}
