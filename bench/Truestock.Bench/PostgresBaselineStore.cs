using Microsoft.AspNetCore.Http;
using Npgsql;

namespace Truestock.Bench;

/// <summary>
/// The baseline on PostgreSQL, done the common way: a pool of connections, each request its own
/// READ COMMITTED transaction, committed durably (the server's synchronous_commit=on). There is no
/// in-process lock: concurrent requests meet in PostgreSQL's row locks. The conditional update of
/// a reservation locks the stock row it changes until the commit (a buyer of the same SKU and
/// location waits, then re-checks the condition on the new row version, so stock never goes
/// negative), and a commit or release first reads the reservation's status with
/// <c>SELECT … FOR UPDATE</c>. A transaction that PostgreSQL aborts as a deadlock victim (40P01)
/// or a serialization failure (40001) is run again, at most <see cref="AttemptsMax"/> times in all,
/// and counted.
/// </summary>
internal sealed class PostgresBaselineStore : BaselineStore
{
    /// <summary>Connections in the pool: requests beyond it wait for one, as an application server's would.</summary>
    public const int PoolConnectionsMax = 64;

    /// <summary>Runs of one transaction before a deadlock or serialization failure fails the request (500).</summary>
    private const int AttemptsMax = 5;

    /// <summary>How long a request may wait for a pooled connection: 1,000 buyers share 64 connections.</summary>
    private const int PoolWaitSeconds = 120;

    private readonly NpgsqlDataSource _source;

    private PostgresBaselineStore(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString)
        {
            Pooling = true,
            MaxPoolSize = PoolConnectionsMax,
            Timeout = PoolWaitSeconds,
            CommandTimeout = PoolWaitSeconds,
            // Statements used repeatedly are prepared on each pooled connection, as a tuned application's would be.
            MaxAutoPrepare = 32,
            // The baseline sets no session state, so a connection returned to the pool needs no reset.
            NoResetOnClose = true,
        };
        _source = NpgsqlDataSource.Create(b.ConnectionString);
    }

    public static async Task<BaselineStore> Open(string connectionString)
    {
        var store = new PostgresBaselineStore(connectionString);
        await using (var c = await store._source.OpenConnectionAsync())
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = BaselineSql.Schema("BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");
            await cmd.ExecuteNonQueryAsync();
        }
        await store.LoadChannels();
        return store;
    }

    public override void Dispose() => _source.Dispose();

    protected override async Task<IResult> Write(Func<BaselineCommands, ValueTask<Outcome>> work)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await _source.OpenConnectionAsync();
            await using var tx = await connection.BeginTransactionAsync();
            try
            {
                var outcome = await work(new BaselineCommands(connection, tx));
                if (outcome.Commit)
                {
                    await tx.CommitAsync();
                }
                else
                {
                    await tx.RollbackAsync();
                }
                return outcome.Result;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
            {
                // PostgreSQL has rolled the whole transaction back; disposing it here ends it on the connection.
                CountRetry(ex.SqlState == PostgresErrorCodes.DeadlockDetected, exhausted: attempt == AttemptsMax);
                if (attempt == AttemptsMax)
                {
                    throw;
                }
            }
        }
    }

    protected override async Task<T> Read<T>(Func<BaselineCommands, ValueTask<T>> work)
    {
        await using var c = await _source.OpenConnectionAsync();
        return await work(new BaselineCommands(c, null));
    }

    /// <summary>A commit or release locks the reservation's row, so two transitions of one reservation run one after the other.</summary>
    protected override BaselineStatement StatusStatement => BaselineSql.StatusForUpdate;

    protected override (BaselineStatement Statement, object Skus) AvailableOfSkus(string[] skus) => (AvailableOfSkusStatement, skus);

    /// <summary>
    /// Stock rows are locked in one order (by SKU, then location) by every event request, so two
    /// concurrent batches touching the same positions wait for each other instead of deadlocking;
    /// the sort is stable, so the events of one position keep their request order.
    /// </summary>
    protected override IEnumerable<int> ApplyOrder(BaselineServer.EventBody[] events) =>
        Enumerable.Range(0, events.Length)
            .OrderBy(i => events[i].Sku, StringComparer.Ordinal)
            .ThenBy(i => events[i].LocationId, StringComparer.Ordinal);

    private static readonly BaselineStatement AvailableOfSkusStatement =
        new("SELECT sku, loc, on_hand - reserved - damaged FROM stock WHERE sku = ANY(@skus)", "@skus");
}
