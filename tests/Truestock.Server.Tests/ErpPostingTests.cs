using System.Globalization;
using System.Net;
using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// ERP posting end to end: the hub, its durable ERP outbox, the poster, and the ERP's emulator (the generic REST ERP,
/// and Odoo once; each connector's own behaviour is in Truestock.Connectors.Tests).
/// </summary>
public sealed class ErpPostingTests
{
    private const string ApiKey = "emulator-erp-key";
    private const int BackoffSecondsMax = 4;

    private static async Task<(HubServer Hub, GenericErpEmulator Erp)> Start(int attemptsMax = 50, params string[] extra)
    {
        var erp = await GenericErpEmulator.StartAsync();
        var hub = await HubServer.Start([
            "--Truestock:Erp:Kind=rest",
            $"--Truestock:Erp:Url={erp.Url}",
            $"--Truestock:Credentials:erp:apiKey={ApiKey}",
            "--Truestock:Erp:RequestsPerSecondMax=1000",
            "--Truestock:Erp:BatchSizeMax=50",
            "--Truestock:Erp:PollMilliseconds=20",
            "--Truestock:Erp:TimeoutSeconds=2",
            $"--Truestock:Erp:BackoffSecondsMax={BackoffSecondsMax}",
            $"--Truestock:Erp:AttemptsMax={attemptsMax}",
            .. extra,
        ]);
        await hub.Setup("web");
        return (hub, erp);
    }

    private static Task<JsonElement> Status(HubServer hub) => hub.GetJson("/v1/erp/status");

    /// <summary>Polls until the condition holds (real time: the poster runs beside the test).</summary>
    private static async Task Eventually(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"Timed out waiting until {what}.");
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until nothing is pending, moving the hub's clock past every retry time as it goes.</summary>
    private static Task Drained(HubServer hub) => Eventually(async () =>
    {
        if ((await Status(hub)).Long("backlog") == 0)
        {
            return true;
        }
        await hub.Advance(TimeSpan.FromSeconds(BackoffSecondsMax + 1));
        return false;
    }, "the ERP backlog is drained");

    private static async Task<long> Metric(HubServer hub, string series)
    {
        var text = await hub.Client.GetStringAsync("/metrics");
        var line = text.Split('\n').Single(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return long.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Every ledger entry of the positions that changes on-hand, as the ERP must book it: key → on-hand change, taken
    /// from the ledger endpoint (each entry's on-hand after minus the one before it).
    /// </summary>
    internal static async Task<Dictionary<string, long>> LedgerMovements(HttpClient client, IEnumerable<(string Sku, string Location)> positions)
    {
        var movements = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (sku, location) in positions)
        {
            long before = 0;
            foreach (var entry in await HubServer.WholeLedger(client, sku, location))
            {
                var after = entry.Long("onHandAfter");
                if (after != before)
                {
                    movements.Add($"{entry.Str("eventId")}:{location}", after - before);
                }
                before = after;
            }
        }
        return movements;
    }

    internal static void AssertBookedExactlyOnce(GenericErpEmulator erp, Dictionary<string, long> expected)
    {
        var booked = erp.Booked;
        Assert.Equal(booked.Count, booked.Select(b => b.Key).Distinct(StringComparer.Ordinal).Count());
        var wrong = expected.Where(e => booked.SingleOrDefault(b => b.Key == e.Key)?.OnHandDelta != e.Value).Select(e => e.Key)
            .Concat(booked.Where(b => !expected.ContainsKey(b.Key)).Select(b => b.Key + " (not a hub movement)")).Take(10).ToList();
        Assert.True(wrong.Count == 0, "The ERP's books disagree with the hub's ledger: " + string.Join(", ", wrong));
    }

    [Fact]
    public async Task every_stock_movement_is_posted_once_and_its_ledger_entry_shows_the_erps_document()
    {
        var (hub, erp) = await Start();
        await using var _ = hub;
        await using var __ = erp;
        var later = HubServer.Epoch.AddHours(1);
        var statuses = await hub.Events(
            HubServer.Event("received", "A", "WH1", 10, eventId: "rcv-1"),
            HubServer.Event("sold", "A", "WH1", 3, eventId: "sold-1"),
            HubServer.Event("damaged", "A", "WH1", 1, eventId: "dmg-1"),
            HubServer.Event("counted", "A", "WH1", 9, later, eventId: "count-1"),
            HubServer.Event("transfer_shipped", "A", "WH1", 2, later.AddMinutes(1), eventId: "move-1").With("toLocationId", "S1"),
            HubServer.Event("transfer_received", "A", "S1", 2, later.AddMinutes(5), eventId: "move-1-in"),
            HubServer.Event("received", "A", "NOWHERE", 1, eventId: "lost-1"),
            HubServer.Event("received", "A", "WH1", 10, eventId: "rcv-1"));
        Assert.Equal(["applied", "applied", "applied", "applied", "applied", "applied", "rejected", "duplicate"], statuses);
        Assert.Equal(HttpStatusCode.Created, (await hub.Reserve(Api.Reservation("order-1", "web", Api.Line("A", 1)))).StatusCode);

        await Drained(hub);

        var expected = await LedgerMovements(hub.Client, [("A", "WH1"), ("A", "S1")]);
        Assert.Equal(["count-1:WH1", "move-1-in:S1", "move-1:WH1", "rcv-1:WH1", "sold-1:WH1"], expected.Keys.Order(StringComparer.Ordinal));
        AssertBookedExactlyOnce(erp, expected);
        Assert.Equal(0, erp.DuplicateAttempts);
        Assert.Equal(await hub.OnHand("A", "WH1"), erp.OnHand("A", "WH1"));
        Assert.Equal(await hub.OnHand("A", "S1"), erp.OnHand("A", "S1"));

        var ledger = (await HubServer.WholeLedger(hub.Client, "A", "WH1")).ToDictionary(e => e.Str("type") + ":" + e.Str("status") + ":" + (e.TryGetProperty("eventId", out var id) ? id.GetString() : e.Str("reservationId")));
        var received = ledger["received:applied:rcv-1"].GetProperty("erp");
        Assert.Equal("posted", received.Str("status"));
        Assert.Equal(erp.Booked.Single(b => b.Key == "rcv-1:WH1").DocumentId, received.Str("documentId"));
        Assert.True(received.GetProperty("postedAt").GetDateTimeOffset() >= HubServer.Epoch);
        Assert.False(received.TryGetProperty("error", out var _));
        Assert.False(ledger["damaged:applied:dmg-1"].TryGetProperty("erp", out var _), "damaged changes no on-hand: nothing to post");
        Assert.False(ledger["reservation_held:applied:order-1"].TryGetProperty("erp", out var _));
        var destination = (await HubServer.WholeLedger(hub.Client, "A", "S1")).First(e => e.Str("eventId") == "move-1").GetProperty("erp");
        Assert.Equal("skipped", destination.Str("status"));

        var status = await Status(hub);
        Assert.True(status.GetProperty("enabled").GetBoolean());
        Assert.True(status.GetProperty("posting").GetBoolean());
        Assert.Equal(("rest", 5L, 0L, 0L), (status.Str("kind"), status.Long("posted"), status.Long("deadLetters"), status.Long("backlog")));
        Assert.Equal(1, status.GetProperty("postings").Long("skipped"));
        Assert.Equal(5, await Metric(hub, "truestock_erp_postings_total{kind=\"rest\",outcome=\"posted\"}"));
    }

    [Fact]
    public async Task the_hub_keeps_serving_while_the_erp_is_down_and_the_erp_books_every_movement_once_after_it_recovers()
    {
        var (hub, erp) = await Start();
        await using var _ = hub;
        await using var __ = erp;
        await erp.TakeDownAsync(refuseConnections: true);

        await hub.Receive("R", "WH1", 100);
        var random = new Random(11);
        for (var batch = 0; batch < 5; batch++)
        {
            var events = Enumerable.Range(0, 40).Select(_ => (object)(random.Next(3) == 0
                ? HubServer.Event("sold", $"S-{random.Next(20)}", random.Next(2) == 0 ? "WH1" : "S1", 1)
                : HubServer.Event("received", $"S-{random.Next(20)}", random.Next(2) == 0 ? "WH1" : "S1", random.Next(1, 5)))).ToArray();
            Assert.All(await hub.Events(events), s => Assert.Equal("applied", s));
            Assert.Equal(HttpStatusCode.Created, (await hub.Reserve(Api.Reservation($"order-{batch}", "web", Api.Line("R", 1)))).StatusCode);
        }
        await Eventually(async () => (await Status(hub)).GetProperty("postings").Long("retried") > 0, "the poster has tried the ERP");
        await Eventually(async () => await Metric(hub, "truestock_erp_backlog{kind=\"rest\"}") == 201, "the backlog metric shows every movement");
        var down = await Status(hub);
        Assert.Contains("failed", down.Str("lastError"), StringComparison.Ordinal);
        Assert.Equal(0, erp.BookedCount);

        await erp.BringUpAsync();
        await Drained(hub);

        var positions = Enumerable.Range(0, 20).SelectMany(i => new[] { ($"S-{i}", "WH1"), ($"S-{i}", "S1") }).Append(("R", "WH1")).ToList();
        var expected = await LedgerMovements(hub.Client, positions);
        Assert.Equal(201, expected.Count);
        AssertBookedExactlyOnce(erp, expected);
        foreach (var (sku, location) in positions)
        {
            Assert.Equal(await hub.OnHand(sku, location), erp.OnHand(sku, location));
        }
        await Eventually(async () => await Metric(hub, "truestock_erp_backlog{kind=\"rest\"}") == 0, "the backlog metric is back to 0");
        Assert.Equal(0, (await Status(hub)).Long("deadLetters"));
    }

    [Fact]
    public async Task a_movement_the_erp_rejects_becomes_a_dead_letter_and_replaying_it_after_the_fix_books_it()
    {
        var (hub, erp) = await Start();
        await using var _ = hub;
        await using var __ = erp;
        erp.Faults.BreakSku("BAD");
        erp.Faults.BreakSku("GONE");

        await hub.Events(
            HubServer.Event("received", "BAD", "WH1", 5, eventId: "bad-1"),
            HubServer.Event("received", "GONE", "WH1", 2, eventId: "gone-1"),
            HubServer.Event("received", "OK", "WH1", 3, eventId: "ok-1"));
        await Eventually(async () => (await Status(hub)).Long("deadLetters") == 2, "both rejected movements are dead letters");

        var page = await hub.GetJson("/v1/erp/dead-letters?limit=1");
        var first = Assert.Single(page.GetProperty("items").EnumerateArray());
        Assert.Equal(("bad-1:WH1", "BAD", "WH1", "received", 5L), (first.Str("key"), first.Str("sku"), first.Str("locationId"), first.Str("type"), first.Long("quantity")));
        Assert.Equal("Item 'BAD' is blocked for posting (item status: blocked).", first.Str("error"));
        var second = Assert.Single((await hub.GetJson($"/v1/erp/dead-letters?after={page.Str("next")}")).GetProperty("items").EnumerateArray());
        Assert.Equal("gone-1:WH1", second.Str("key"));
        Assert.Equal("bad-1:WH1", (await hub.GetJson($"/v1/erp/dead-letters/{first.Long("ledgerId")}")).Str("key"));
        var deadEntry = (await HubServer.WholeLedger(hub.Client, "BAD", "WH1")).Single().GetProperty("erp");
        Assert.Equal(("dead", "Item 'BAD' is blocked for posting (item status: blocked)."), (deadEntry.Str("status"), deadEntry.Str("error")));
        Assert.Equal(3, erp.OnHand("OK", "WH1"));

        // The operator fixes the item in the ERP and replays; the other one is written off the books.
        erp.Faults.Heal("BAD");
        var replayed = await Api.AssertJson(await hub.PostEmpty($"/v1/erp/dead-letters/{first.Long("ledgerId")}/replay"), HttpStatusCode.OK);
        Assert.Equal(("replayed", 1L), (replayed.Str("action"), replayed.Long("count")));
        var discarded = await Api.AssertJson(await hub.Client.DeleteAsync("/v1/erp/dead-letters"), HttpStatusCode.OK);
        Assert.Equal(("discarded", 1L), (discarded.Str("action"), discarded.Long("count")));
        await Drained(hub);

        Assert.Equal(5, erp.OnHand("BAD", "WH1"));
        Assert.Equal(0, erp.OnHand("GONE", "WH1"));
        Assert.Equal("posted", (await HubServer.WholeLedger(hub.Client, "BAD", "WH1")).Single().GetProperty("erp").Str("status"));
        Assert.Equal("discarded", (await HubServer.WholeLedger(hub.Client, "GONE", "WH1")).Single().GetProperty("erp").Str("status"));
        Assert.Equal(0, (await Status(hub)).Long("deadLetters"));
        await Api.AssertStatusAndType(await hub.PostEmpty($"/v1/erp/dead-letters/{first.Long("ledgerId")}/replay"), HttpStatusCode.NotFound, "unknown-dead-letter");
        await Api.AssertStatusAndType(await hub.Client.DeleteAsync("/v1/erp/dead-letters/999999"), HttpStatusCode.NotFound, "unknown-dead-letter");
        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/erp/dead-letters/abc"), "ledgerId");
    }

    [Fact]
    public async Task a_movement_that_keeps_failing_transiently_is_dead_lettered_after_its_attempts_and_replay_books_it()
    {
        var (hub, erp) = await Start(attemptsMax: 2);
        await using var _ = hub;
        await using var __ = erp;
        await erp.TakeDownAsync(refuseConnections: true);

        await hub.Receive("A", "WH1", 4);
        await Eventually(async () =>
        {
            if ((await Status(hub)).Long("deadLetters") == 1)
            {
                return true;
            }
            await hub.Advance(TimeSpan.FromSeconds(BackoffSecondsMax + 1));
            return false;
        }, "the posting ran out of attempts");

        var dead = Assert.Single((await hub.GetJson("/v1/erp/dead-letters")).GetProperty("items").EnumerateArray());
        Assert.StartsWith("Gave up after 2 attempts: The request to the ERP failed", dead.Str("error"), StringComparison.Ordinal);
        Assert.Equal(2, dead.Long("attempts"));

        await erp.BringUpAsync();
        Assert.Equal(1, (await Api.AssertJson(await hub.PostEmpty("/v1/erp/dead-letters/replay"), HttpStatusCode.OK)).Long("count"));
        await Drained(hub);
        Assert.Equal(4, erp.OnHand("A", "WH1"));
    }

    [Fact]
    public async Task movements_are_booked_in_odoo_as_inventory_adjustments_named_by_their_keys()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var warehouse = odoo.AddLocation("WH/Stock");
        var store = odoo.AddLocation("S1/Stock");
        odoo.AddProduct("A");
        await using var hub = await HubServer.Start(
            "--Truestock:Erp:Kind=odoo",
            $"--Truestock:Erp:Url={odoo.Url}",
            $"--Truestock:Erp:Database={odoo.Database}",
            $"--Truestock:Erp:Login={odoo.Login}",
            $"--Truestock:Erp:LocationMap:WH1={warehouse}",
            $"--Truestock:Erp:LocationMap:S1={store}",
            "--Truestock:Credentials:odoo:password=emulator-odoo-key",
            "--Truestock:Erp:Credentials=odoo",
            "--Truestock:Erp:RequestsPerSecondMax=1000",
            "--Truestock:Erp:PollMilliseconds=20");
        await hub.Setup("web");

        await hub.Events(
            HubServer.Event("received", "A", "WH1", 12, eventId: "rcv-1"),
            HubServer.Event("sold", "A", "WH1", 5, eventId: "sold-1"),
            HubServer.Event("received", "A", "S1", 2, eventId: "rcv-2"));
        await Drained(hub);

        Assert.Equal(await hub.OnHand("A", "WH1"), odoo.QuantityOf("A", warehouse));
        Assert.Equal(await hub.OnHand("A", "S1"), odoo.QuantityOf("A", store));
        Assert.Equal(["rcv-1:WH1", "rcv-2:S1", "sold-1:WH1"], odoo.Moves.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, odoo.DuplicateBookings);
        var sold = (await HubServer.WholeLedger(hub.Client, "A", "WH1")).Single(e => e.Str("eventId") == "sold-1").GetProperty("erp");
        Assert.Equal(odoo.Moves.Single(m => m.Name == "sold-1:WH1").Id.ToString(CultureInfo.InvariantCulture), sold.Str("documentId"));
    }

    [Fact]
    public async Task with_erp_posting_off_nothing_is_written_to_the_erp_outbox()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");

        await hub.Receive("A", "WH1", 7);
        await hub.Events(HubServer.Event("sold", "A", "WH1", 2));

        Assert.Equal(0, hub.Journal.CountErpOutbox(null));
        Assert.All(await HubServer.WholeLedger(hub.Client, "A", "WH1"), e => Assert.False(e.TryGetProperty("erp", out _)));
        var status = await Status(hub);
        Assert.False(status.GetProperty("enabled").GetBoolean());
        Assert.Equal(0, status.Long("backlog"));
        Assert.DoesNotContain("truestock_erp_backlog", await hub.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public void a_misconfigured_erp_stops_the_hub_from_starting_with_the_setting_named()
    {
        var error = Assert.Throws<InvalidOperationException>(() => HubApp.Build(["--Truestock:Erp:Kind=odoo", "--Truestock:Erp:Url=https://acme.odoo.com"]));

        Assert.Contains("Truestock:Erp: Database is required for Odoo", error.Message, StringComparison.Ordinal);
    }
}
