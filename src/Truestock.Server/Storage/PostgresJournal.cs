using System.Data.Common;
using Npgsql;
using Truestock.Core;

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

    /// <summary>Most rows one bulk statement carries; a larger batch is split into several statements of the same round trip.</summary>
    internal const int BulkRowsPerStatementMax = 8_192;

    /// <summary>
    /// Writes the batch with one <c>INSERT … SELECT FROM unnest(arrays)</c> per table (per
    /// <see cref="BulkRowsPerStatementMax"/> rows), all sent in one round trip, instead of one round
    /// trip per row: a batch of a thousand commands costs two round trips (the statements and the
    /// commit) instead of thousands. The rows, ids and order are the same as the row-by-row path's.
    /// </summary>
    protected override bool AppendBulk(DbConnection writer, DbTransaction tx, in JournalBatch batch)
    {
        using var bulk = new NpgsqlBatch((NpgsqlConnection)writer, (NpgsqlTransaction)tx);
        AddCommands(bulk, batch);
        AddLedger(bulk, batch);
        AddExceptions(bulk, batch);
        var accepted = batch.Effects.AcceptedEvents;
        Chunked(accepted.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            "INSERT INTO event_ids (event_id, fingerprint) SELECT * FROM unnest($1::text[], $2::text[])",
            Column(accepted, from, n, static a => a.EventId), Column(accepted, from, n, static a => FingerprintText(a.Fingerprint)))));
        var created = batch.Effects.CreatedReservations;
        Chunked(created.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            "INSERT INTO reservation_ids (reservation_id, fingerprint) SELECT * FROM unnest($1::text[], $2::text[])",
            Column(created, from, n, static r => r.Id), Column(created, from, n, static r => FingerprintText(r.Fingerprint)))));
        var archived = batch.Archived;
        Chunked(archived.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            "UPDATE reservation_ids SET archived_view = u.view FROM unnest($1::text[], $2::text[]) AS u(id, view) WHERE reservation_ids.reservation_id = u.id",
            Column(archived, from, n, static a => a.Id), Column(archived, from, n, static a => a.ViewJson))));
        AddSyncChanges(bulk, batch);
        if (batch.ErpPosting)
        {
            AddErpOutbox(bulk, batch);
        }
        if (bulk.BatchCommands.Count > 0)
        {
            bulk.ExecuteNonQuery();
        }
        return true;
    }

    private static void AddCommands(NpgsqlBatch bulk, in JournalBatch batch)
    {
        var records = batch.Records;
        var firstSeq = batch.LastSeq + 1;
        Chunked(records.Count, (from, n) =>
        {
            var seq = new long[n];
            for (var i = 0; i < n; i++)
            {
                seq[i] = firstSeq + from + i;
            }
            bulk.BatchCommands.Add(Statement(
                "INSERT INTO commands (seq, recorded_at, kind, payload) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])",
                seq, Column(records, from, n, static r => Text(r.RecordedAt)), Column(records, from, n, static r => r.Kind),
                Column(records, from, n, static r => r.Payload)));
        });
    }

    private static void AddLedger(NpgsqlBatch bulk, in JournalBatch batch)
    {
        var rows = batch.Numbered(batch.Effects.Ledger, batch.FirstLedgerId, static r => (r.LedgerFrom, r.LedgerTo));
        Chunked(rows.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            """
            INSERT INTO ledger (id, command_seq, sku, location_id, event_id, reservation_id, type, quantity, occurred_at, recorded_at, status,
                source, correlation_id, on_hand_after, available_after)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[],
                $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[])
            """,
            Column(rows, from, n, static x => x.Id), Column(rows, from, n, static x => x.Seq),
            Column(rows, from, n, static x => x.Row.Sku), Column(rows, from, n, static x => x.Row.LocationId),
            Column(rows, from, n, static x => x.Row.EventId), Column(rows, from, n, static x => x.Row.ReservationId),
            Column(rows, from, n, static x => x.Row.Type), Column(rows, from, n, static x => x.Row.Quantity),
            Column(rows, from, n, static x => Text(x.Row.OccurredAt)), Column(rows, from, n, static x => Text(x.Row.RecordedAt)),
            Column(rows, from, n, static x => x.Row.Status), Column(rows, from, n, static x => x.Row.Source),
            Column(rows, from, n, static x => x.Row.CorrelationId), Column(rows, from, n, static x => x.Row.OnHandAfter),
            Column(rows, from, n, static x => x.Row.AvailableAfter))));
    }

    private static void AddExceptions(NpgsqlBatch bulk, in JournalBatch batch)
    {
        var rows = batch.Numbered(batch.Effects.Exceptions, batch.FirstExceptionId, static r => (r.ExceptionsFrom, r.ExceptionsTo));
        Chunked(rows.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            """
            INSERT INTO exceptions (id, command_seq, type, sku, location_id, event_id, reservation_id, source, quantity, detail, recorded_at)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
                $10::text[], $11::text[])
            """,
            Column(rows, from, n, static x => x.Id), Column(rows, from, n, static x => x.Seq),
            Column(rows, from, n, static x => x.Row.Type), Column(rows, from, n, static x => x.Row.Sku),
            Column(rows, from, n, static x => x.Row.LocationId), Column(rows, from, n, static x => x.Row.EventId),
            Column(rows, from, n, static x => x.Row.ReservationId), Column(rows, from, n, static x => x.Row.Source),
            Column(rows, from, n, static x => x.Row.Quantity), Column(rows, from, n, static x => x.Row.Detail),
            Column(rows, from, n, static x => Text(x.Row.RecordedAt)))));
    }

    private static void AddSyncChanges(NpgsqlBatch bulk, in JournalBatch batch)
    {
        var changes = batch.SyncChanges;
        if (changes.Count == 0)
        {
            return;
        }
        // Every row of the batch takes the batch's last sequence number as its version, as the row-by-row path does.
        var version = batch.LastSeq + batch.Records.Count;
        var changedAtMs = batch.BatchTime.ToUnixTimeMilliseconds();
        // The changes arrive sorted by (channel, SKU) and unnest keeps that order, so rows are still
        // locked in the one order the publisher also uses. A forced row must be updated even with an
        // unchanged ATS; the forced pairs travel as two more arrays.
        Chunked(changes.Count, (from, n) =>
        {
            var forced = new List<SyncChange>();
            for (var i = from; i < from + n; i++)
            {
                if (changes[i].Force)
                {
                    forced.Add(changes[i]);
                }
            }
            bulk.BatchCommands.Add(Statement(
                SyncInsertColumnsSql + "\n" + """
                SELECT u.channel_id, u.sku, u.ats, $4, $5, 1, NULL, 0, NULL, 0, 0, 0, NULL, NULL
                FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(channel_id, sku, ats)
                """ + "\n" + SyncOnConflictSql + "\n" + """
                WHERE channel_sync.ats <> excluded.ats
                    OR (excluded.channel_id, excluded.sku) IN (SELECT * FROM unnest($6::text[], $7::text[]))
                """,
                Column(changes, from, n, static c => c.ChannelId), Column(changes, from, n, static c => c.Sku),
                Column(changes, from, n, static c => c.Ats), version, changedAtMs,
                Column(forced, 0, forced.Count, static c => c.ChannelId), Column(forced, 0, forced.Count, static c => c.Sku)));
        });
    }

    private static void AddErpOutbox(NpgsqlBatch bulk, in JournalBatch batch)
    {
        var ids = new List<long>();
        var id = batch.FirstLedgerId;
        foreach (var r in batch.Records)
        {
            for (var i = r.LedgerFrom; i < r.LedgerTo; i++, id++)
            {
                if (IsErpMovement(batch.Effects.Ledger[i]))
                {
                    ids.Add(id);
                }
            }
        }
        var enqueuedAtMs = batch.BatchTime.ToUnixTimeMilliseconds();
        Chunked(ids.Count, (from, n) => bulk.BatchCommands.Add(Statement(
            "INSERT INTO erp_outbox (ledger_id, status, attempts, next_attempt_ms, enqueued_at_ms) SELECT id, 'pending', 0, 0, $2 FROM unnest($1::bigint[]) AS id",
            ids.GetRange(from, n).ToArray(), enqueuedAtMs)));
    }

    private static void Chunked(int count, Action<int, int> add)
    {
        for (var from = 0; from < count; from += BulkRowsPerStatementMax)
        {
            add(from, Math.Min(BulkRowsPerStatementMax, count - from));
        }
    }

    private static TOut[] Column<TIn, TOut>(IReadOnlyList<TIn> rows, int from, int count, Func<TIn, TOut> select)
    {
        var column = new TOut[count];
        for (var i = 0; i < count; i++)
        {
            column[i] = select(rows[from + i]);
        }
        return column;
    }

    private static NpgsqlBatchCommand Statement(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            // Positional ($n) parameters: their types come from the casts in the SQL and the CLR arrays.
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        return command;
    }

    protected override bool TryLockWriter(DbConnection writer)
    {
        using var cmd = writer.CreateCommand();
        cmd.CommandText = $"SELECT pg_try_advisory_lock({WriterLockKey})";
        return cmd.ExecuteScalar() is true;
    }
}
