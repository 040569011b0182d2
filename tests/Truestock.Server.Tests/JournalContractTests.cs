using Truestock.Core;
using Truestock.Server.Storage;

namespace Truestock.Server.Tests;

/// <summary>
/// The storage contract every journal keeps, run on the store TRUESTOCK_TEST_BACKEND names
/// (./test.sh runs it on SQLite and on PostgreSQL).
/// </summary>
public sealed class JournalContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);
    private TestStorage _storage = null!;

    public async Task InitializeAsync() => _storage = await TestStorage.Create();

    public async Task DisposeAsync() => await _storage.DisposeAsync();

    private AdoJournal NewJournal() => _storage.Backend == "postgres"
        ? new PostgresJournal(_storage.PostgresConnectionString)
        : new SqliteJournal(_storage.DataPath);

    private static AdoJournal Writer(AdoJournal journal)
    {
        journal.Open();
        Assert.True(journal.TryBecomeWriter());
        return journal;
    }

    private static (List<PendingRecord> Records, Effects Effects) Batch(int commands, string sku = "A")
    {
        var fx = new Effects();
        var records = new List<PendingRecord>();
        for (var i = 0; i < commands; i++)
        {
            var from = fx.Ledger.Count;
            fx.Ledger.Add(new LedgerEntry(sku, "WH1", $"e-{sku}-{i}", null, "received", 1, T0, T0, "applied", "wms", "c", i + 1, i + 1));
            fx.AcceptedEvents.Add(($"e-{sku}-{i}", new Fingerprint((ulong)i, 1)));
            var xFrom = fx.Exceptions.Count;
            if (i % 2 == 0)
            {
                fx.Exceptions.Add(new ExceptionRecord(i % 4 == 0 ? "clamp" : "oversell", sku, "WH1", $"e-{sku}-{i}", null, "wms", 1, "detail", T0));
            }
            records.Add(new PendingRecord(T0.AddSeconds(i), "events", $"{{\"n\":{i}}}", from, fx.Ledger.Count, xFrom, fx.Exceptions.Count));
        }
        return (records, fx);
    }

    [Fact]
    public void migrations_apply_once_and_opening_again_changes_nothing()
    {
        using (var first = NewJournal())
        {
            first.Open();
        }
        int migrations;
        using (var second = NewJournal())
        {
            second.Open();
            migrations = second.Migrations.Count;
        }

        using var c = _storage.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM schema_version";
        Assert.True(migrations >= 2, "the channel outbox is migration 2");
        Assert.Equal(migrations, Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void a_store_with_a_newer_schema_is_refused_with_a_clear_message()
    {
        using (var journal = NewJournal())
        {
            journal.Open();
        }
        _storage.Execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 'later')");

        using var again = NewJournal();
        var error = Assert.Throws<InvalidOperationException>(again.Open);
        Assert.Contains("newer than this build supports", error.Message);
    }

    [Fact]
    public void appended_batches_read_back_in_order_with_their_ledger_rows_and_exceptions()
    {
        using var journal = Writer(NewJournal());
        var (records, fx) = Batch(5);
        journal.Append(records, fx, []);
        var (more, fx2) = Batch(3, "B");
        journal.Append(more, fx2, []);

        var commands = journal.ReadCommands(0).ToList();
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7, 8], commands.Select(c => c.Seq));
        Assert.Equal(8, journal.LastSeq);
        Assert.Equal(T0.AddSeconds(4), commands[4].RecordedAt);
        Assert.Equal([6L, 7, 8], journal.ReadCommands(5).Select(c => c.Seq));

        var page = journal.ReadLedger("A", "WH1", 0, 3);
        Assert.Equal(["e-A-0", "e-A-1", "e-A-2"], page.Select(e => e.EventId));
        var next = journal.ReadLedger("A", "WH1", page[^1].Id, 10);
        Assert.Equal(["e-A-3", "e-A-4"], next.Select(e => e.EventId));
        Assert.Equal(5, next[^1].OnHandAfter);

        Assert.Equal(5, journal.ReadExceptions(null, 0, 100).Count);
        Assert.All(journal.ReadExceptions("clamp", 0, 100), x => Assert.Equal("clamp", x.Type));
        Assert.Equal(3, journal.ReadExceptions("clamp", 0, 100).Count);
    }

    [Fact]
    public void a_new_writer_continues_the_sequence_after_what_is_committed()
    {
        using (var journal = Writer(NewJournal()))
        {
            var (records, fx) = Batch(4);
            journal.Append(records, fx, []);
        }

        using var next = Writer(NewJournal());
        Assert.Equal(4, next.LastSeq);
        var (more, fx2) = Batch(2, "B");
        next.Append(more, fx2, []);
        Assert.Equal([1L, 2, 3, 4, 5, 6], next.ReadCommands(0).Select(c => c.Seq));
        Assert.Equal(6, next.ReadMaxSeq());
    }

    [Fact]
    public void a_failed_batch_leaves_nothing_behind()
    {
        using var journal = Writer(NewJournal());
        var (records, fx) = Batch(2);
        journal.Append(records, fx, []);

        // The same accepted ids again violate the durable idempotency table: the whole batch must roll back.
        var (again, fx2) = Batch(2);
        Assert.ThrowsAny<System.Data.Common.DbException>(() => journal.Append(again, fx2, []));

        Assert.Equal(2, journal.LastSeq);
        Assert.Equal(2, journal.ReadCommands(0).Count());
        Assert.Equal(2, journal.ReadLedger("A", "WH1", 0, 100).Count);
    }

    [Fact]
    public void accepted_ids_are_found_durably_with_their_fingerprints_and_archived_reservations_with_their_state()
    {
        using var journal = Writer(NewJournal());
        var (records, fx) = Batch(3);
        var reservation = new Reservation
        {
            Id = "r1", ChannelId = "web", CreatedAt = T0, ExpiresAt = T0.AddMinutes(15), TtlSeconds = 900, CorrelationId = "c",
            Lines = [new ReservationLine { Sku = "A", Quantity = 1, LocationId = "WH1" }], Fingerprint = new Fingerprint(5, 6),
        };
        fx.CreatedReservations.Add(reservation);
        journal.Append(records, fx, []);
        Assert.Null(journal.FindReservation("r1")!.Value.ArchivedView);

        var (archive, fx2) = Batch(0);
        archive.Add(new PendingRecord(T0, "prune", "{}", 0, 0, 0, 0));
        journal.Append(archive, fx2, [("r1", "{\"reservationId\":\"r1\",\"status\":\"released\"}")]);

        var found = journal.FindEventFingerprints(["e-A-0", "e-A-2", "never"]);
        Assert.Equal(2, found.Count);
        Assert.Equal(new Fingerprint(2, 1), found["e-A-2"]);
        var r = journal.FindReservation("r1");
        Assert.Equal(new Fingerprint(5, 6), r!.Value.Fingerprint);
        Assert.Contains("released", r.Value.ArchivedView);
        Assert.Null(journal.FindReservation("r2"));
    }

    [Fact]
    public void the_newest_snapshot_is_read_back_and_only_the_newest_two_are_kept()
    {
        using var journal = Writer(NewJournal());
        Assert.Null(journal.ReadLatestSnapshot());

        foreach (var seq in new long[] { 10, 20, 30 })
        {
            journal.WriteSnapshot(seq, T0, System.Text.Encoding.UTF8.GetBytes($"{{\"seq\":{seq}}}"));
        }

        var latest = journal.ReadLatestSnapshot();
        Assert.Equal(30, latest!.Value.LastSeq);
        Assert.Equal("{\"seq\":30}", System.Text.Encoding.UTF8.GetString(latest.Value.Json));
        using var c = _storage.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM snapshots";
        Assert.Equal(2L, Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void only_one_writer_at_a_time_and_the_writer_role_passes_on_when_the_writer_closes()
    {
        using var first = NewJournal();
        first.Open();
        Assert.True(first.TryBecomeWriter());
        using var second = NewJournal();
        second.Open();

        // PostgreSQL: the advisory lock; SQLite: the exclusive lock file beside the data file.
        Assert.False(second.TryBecomeWriter());
        Assert.Throws<InvalidOperationException>(() => second.Append([], new Effects(), []));
        first.Dispose();
        Assert.True(second.TryBecomeWriter());
    }
}
