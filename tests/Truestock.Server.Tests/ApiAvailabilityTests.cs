using System.Net;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>GET /v1/availability/{sku}, GET /v1/channels/{id}/availability and the position ledger over HTTP.</summary>
public sealed class ApiAvailabilityTests
{
    private static readonly string[] PositionFields =
        ["locationId", "onHand", "damaged", "inspection", "allocated", "reserved", "incoming", "safetyStock", "available"];

    private static Dictionary<string, long> Ats(JsonElement view) =>
        view.GetProperty("channels").EnumerateArray().ToDictionary(c => c.Str("channelId"), c => c.Long("available"));

    // ------------------------------------------------------------------ GET /v1/availability/{sku}

    [Fact]
    public async Task an_unknown_sku_lists_every_declared_location_with_zeros_and_every_channel_with_zero_ats()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Put("/v1/channels/amazon", new { name = "Amazon", locations = new[] { "WH1" } });
        await hub.Receive("OTHER", "WH1", 5);

        var view = await hub.GetJson("/v1/availability/NEVER-SEEN");

        Assert.Equal("NEVER-SEEN", view.Str("sku"));
        var locations = view.GetProperty("locations").EnumerateArray().ToArray();
        Assert.Equal(["S1", "WH1"], locations.Select(l => l.Str("locationId")).ToArray());
        foreach (var l in locations)
        {
            Assert.Equal(PositionFields.Order(StringComparer.Ordinal), l.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
            Assert.All(PositionFields.Skip(1), f => Assert.Equal(0, l.Long(f)));
        }
        Assert.Equal(new Dictionary<string, long> { ["amazon"] = 0, ["web"] = 0 }, Ats(view));
    }

    [Fact]
    public async Task availability_before_any_master_data_is_empty_not_an_error()
    {
        await using var hub = await HubServer.Start();

        var view = await hub.GetJson("/v1/availability/SKU-1");

        Assert.Equal("SKU-1", view.Str("sku"));
        Assert.Empty(view.GetProperty("locations").EnumerateArray());
        Assert.Empty(view.GetProperty("channels").EnumerateArray());
    }

    [Fact]
    public async Task availability_shows_every_quantity_of_a_position_and_available_by_the_model_formula()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(
            HubServer.Event("received", "SKU-1", "WH1", 20),
            HubServer.Event("damaged", "SKU-1", "WH1", 2),
            HubServer.Event("return_received", "SKU-1", "WH1", 3),
            HubServer.Event("transfer_shipped", "SKU-1", "WH1", 5).With("toLocationId", "S1"));
        await Api.AssertJson(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 2 }), HttpStatusCode.OK);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order", "web", Api.Line("SKU-1", 4, "WH1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order"), HttpStatusCode.OK);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart", "web", Api.Line("SKU-1", 1, "WH1"))), HttpStatusCode.Created);

        var wh1 = await hub.Position("SKU-1", "WH1");
        Assert.Equal(18, wh1.Long("onHand"));
        Assert.Equal(2, wh1.Long("damaged"));
        Assert.Equal(3, wh1.Long("inspection"));
        Assert.Equal(4, wh1.Long("allocated"));
        Assert.Equal(1, wh1.Long("reserved"));
        Assert.Equal(0, wh1.Long("incoming"));
        Assert.Equal(2, wh1.Long("safetyStock"));
        Assert.Equal(18 - 2 - 3 - 4 - 1 - 2, wh1.Long("available"));
        await hub.AssertQuantities("SKU-1", "S1", 0, 0, 0, 0, 0, 5, 0, 0);
        Assert.Equal(6, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task channel_ats_applies_allocation_percent_then_buffer_then_cap()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        string[] both = ["WH1", "S1"];
        await hub.Put("/v1/channels/half", new { name = "Half", locations = both, allocationPercent = 50 });
        await hub.Put("/v1/channels/third", new { name = "Third", locations = both, allocationPercent = 33, bufferUnits = 1, maxQuantity = 100 });
        await hub.Put("/v1/channels/buffered", new { name = "Buffered", locations = both, bufferUnits = 3 });
        await hub.Put("/v1/channels/capped", new { name = "Capped", locations = both, maxQuantity = 4 });
        await hub.Put("/v1/channels/closed", new { name = "Closed", locations = both, allocationPercent = 0 });
        await hub.Put("/v1/channels/overbuffered", new { name = "Overbuffered", locations = both, bufferUnits = 50 });
        await hub.Receive("SKU-1", "WH1", 10);
        await hub.Receive("SKU-1", "S1", 7);

        var ats = Ats(await hub.GetJson("/v1/availability/SKU-1"));

        Assert.Equal(17, ats["web"]);          // pool 17
        Assert.Equal(8, ats["half"]);          // floor(17 · 50 / 100)
        Assert.Equal(4, ats["third"]);         // floor(17 · 33 / 100) − 1
        Assert.Equal(14, ats["buffered"]);     // 17 − 3
        Assert.Equal(4, ats["capped"]);        // min(17, 4)
        Assert.Equal(0, ats["closed"]);        // 0 %
        Assert.Equal(0, ats["overbuffered"]);  // never below 0
        Assert.Equal(7, ats.Count);
    }

    [Fact]
    public async Task channel_ats_pools_only_its_sourcing_locations_and_ignores_negative_available()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Put("/v1/channels/store-only", new { name = "Store", locations = new[] { "S1" } });
        await hub.Put("/v1/channels/warehouse-only", new { name = "Warehouse", locations = new[] { "WH1" } });
        await hub.Events(HubServer.Event("sold", "SKU-1", "WH1", 3), HubServer.Event("received", "SKU-1", "S1", 5));
        Assert.Equal(-3, await hub.Available("SKU-1", "WH1"));

        var ats = Ats(await hub.GetJson("/v1/availability/SKU-1"));

        Assert.Equal(5, ats["web"]);  // max(0, −3) + 5
        Assert.Equal(5, ats["store-only"]);
        Assert.Equal(0, ats["warehouse-only"]);
    }

    [Fact]
    public async Task a_sku_over_64_characters_is_422()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/availability/" + new string('s', 65)), "sku");
    }

    // ------------------------------------------------------------------ GET /v1/channels/{id}/availability

    [Fact]
    public async Task bulk_channel_availability_answers_each_sku_in_the_order_asked()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web", new { bufferUnits = 1 });
        await hub.Receive("SKU-1", "WH1", 10);
        await hub.Receive("SKU-2", "S1", 3);

        var view = await hub.GetJson("/v1/channels/web/availability?sku=SKU-2&sku=NEVER&sku=SKU-1");

        Assert.Equal("web", view.Str("channelId"));
        var items = view.GetProperty("items").EnumerateArray().Select(i => (i.Str("sku"), i.Long("available"))).ToArray();
        Assert.Equal([("SKU-2", 2L), ("NEVER", 0L), ("SKU-1", 9L)], items);
    }

    [Fact]
    public async Task bulk_channel_availability_takes_up_to_500_skus()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("S-0007", "WH1", 4);

        var query = string.Join("&", Enumerable.Range(0, 500).Select(i => $"sku=S-{i:D4}"));
        var view = await hub.GetJson("/v1/channels/web/availability?" + query);

        var items = view.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(500, items.Length);
        Assert.Equal(4, items[7].Long("available"));
        Assert.Equal(0, items[8].Long("available"));
    }

    [Fact]
    public async Task bulk_channel_availability_of_501_skus_is_422()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var query = string.Join("&", Enumerable.Range(0, 501).Select(i => $"sku=S-{i:D4}"));

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/channels/web/availability?" + query), "sku");
    }

    [Theory]
    [InlineData("")]
    [InlineData("?other=1")]
    [InlineData("?sku=")]
    public async Task bulk_channel_availability_without_a_valid_sku_is_422(string query)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/channels/web/availability" + query), "sku");
    }

    [Fact]
    public async Task bulk_availability_of_an_unknown_channel_is_404()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/nope/availability?sku=SKU-1"), HttpStatusCode.NotFound, "unknown-channel");
    }

    // ------------------------------------------------------------------ ledger

    [Fact]
    public async Task the_ledger_lists_a_positions_events_oldest_first_with_quantities_after_each()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(
            HubServer.Event("received", "SKU-1", "WH1", 10, HubServer.Epoch.AddMinutes(-30), "in-1").With("correlationId", "corr-1"),
            HubServer.Event("sold", "SKU-1", "WH1", 3, HubServer.Epoch.AddMinutes(-10), "out-1", source: "pos"));
        await hub.Advance(TimeSpan.FromMinutes(5));
        await hub.Events(HubServer.Event("damaged", "SKU-1", "WH1", 1, eventId: "dmg-1"));

        var page = await hub.GetJson("/v1/positions/SKU-1/WH1/ledger");

        var entries = page.GetProperty("entries").EnumerateArray().ToArray();
        Assert.False(page.TryGetProperty("next", out _));
        Assert.Equal(["in-1", "out-1", "dmg-1"], entries.Select(e => e.Str("eventId")).ToArray());
        Assert.Equal(["received", "sold", "damaged"], entries.Select(e => e.Str("type")).ToArray());
        Assert.Equal([10L, 3L, 1L], entries.Select(e => e.Long("quantity")).ToArray());
        Assert.Equal([10L, 7L, 7L], entries.Select(e => e.Long("onHandAfter")).ToArray());
        Assert.Equal([10L, 7L, 6L], entries.Select(e => e.Long("availableAfter")).ToArray());
        Assert.All(entries, e => Assert.Equal("applied", e.Str("status")));
        Assert.Equal(["wms", "pos", "wms"], entries.Select(e => e.Str("source")).ToArray());
        Assert.Equal("corr-1", entries[0].Str("correlationId"));
        Assert.False(string.IsNullOrEmpty(entries[1].Str("correlationId")));
        Assert.Equal(HubServer.Epoch.AddMinutes(-30), entries[0].GetProperty("occurredAt").GetDateTimeOffset());
        Assert.Equal(HubServer.Epoch, entries[0].GetProperty("recordedAt").GetDateTimeOffset());
        Assert.Equal(HubServer.Epoch.AddMinutes(5), entries[2].GetProperty("recordedAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task the_ledger_records_superseded_stale_and_rejected_events_and_reservation_changes()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var t = HubServer.Epoch;
        await hub.Events(HubServer.Event("received", "SKU-1", "WH1", 10, t, "a"));
        await hub.Events(HubServer.Event("counted", "SKU-1", "WH1", 9, t.AddHours(2), "b"));
        await hub.Events(HubServer.Event("sold", "SKU-1", "WH1", 1, t.AddHours(1), "c"));
        await hub.Events(HubServer.Event("counted", "SKU-1", "WH1", 4, t.AddHours(1), "d"));
        await hub.Events(HubServer.Event("received", "SKU-1", "WH1", 99, t, "a"));
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart", "web", Api.Line("SKU-1", 2, "WH1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Release("cart"), HttpStatusCode.OK);

        var entries = (await hub.GetJson("/v1/positions/SKU-1/WH1/ledger")).GetProperty("entries").EnumerateArray().ToArray();

        Assert.Equal(
            ["received/applied", "counted/applied", "sold/superseded", "counted/stale", "received/rejected", "reservation_held/applied", "reservation_released/applied"],
            entries.Select(e => $"{e.Str("type")}/{e.Str("status")}").ToArray());
        Assert.Equal("cart", entries[5].Str("reservationId"));
        Assert.Equal([10L, 9L, 9L, 9L, 9L, 9L, 9L], entries.Select(e => e.Long("onHandAfter")).ToArray());
        Assert.Equal(7, entries[5].Long("availableAfter"));
        Assert.Equal(9, entries[6].Long("availableAfter"));
    }

    [Fact]
    public async Task a_transfer_appears_in_the_ledger_of_both_positions()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(
            HubServer.Event("received", "SKU-1", "WH1", 10),
            HubServer.Event("transfer_shipped", "SKU-1", "WH1", 4, eventId: "move-1").With("toLocationId", "S1"));

        var store = (await hub.GetJson("/v1/positions/SKU-1/S1/ledger")).GetProperty("entries").EnumerateArray().ToArray();

        var entry = Assert.Single(store);
        Assert.Equal("move-1", entry.Str("eventId"));
        Assert.Equal("transfer_shipped", entry.Str("type"));
    }

    [Fact]
    public async Task the_ledger_pages_with_a_next_cursor_until_the_last_page()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var ids = Enumerable.Range(1, 5).Select(i => $"e-{i}").ToArray();
        await hub.Events(ids.Select(id => (object)HubServer.Event("received", "SKU-1", "WH1", 1, eventId: id)).ToArray());
        // Another position's rows never show up in this one's pages.
        await hub.Events(HubServer.Event("received", "SKU-1", "S1", 1), HubServer.Event("received", "SKU-2", "WH1", 1));

        var seen = new List<string>();
        var pages = 0;
        string? next = null;
        do
        {
            var page = await hub.GetJson("/v1/positions/SKU-1/WH1/ledger?limit=2" + (next is null ? "" : "&after=" + next));
            var entries = page.GetProperty("entries").EnumerateArray().ToArray();
            Assert.InRange(entries.Length, 1, 2);
            seen.AddRange(entries.Select(e => e.Str("eventId")));
            next = page.TryGetProperty("next", out var n) ? n.GetString() : null;
            pages++;
        }
        while (next is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(ids, seen);
    }

    [Fact]
    public async Task the_ledger_of_an_untouched_position_is_empty()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var page = await hub.GetJson("/v1/positions/NEVER/WH1/ledger?limit=1000");

        Assert.Empty(page.GetProperty("entries").EnumerateArray());
        Assert.False(page.TryGetProperty("next", out _));
    }

    [Fact]
    public async Task the_ledger_of_an_undeclared_location_is_404()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/positions/SKU-1/NOPE/ledger"), HttpStatusCode.NotFound, "unknown-location");
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=1001", "limit")]
    [InlineData("limit=ten", "limit")]
    [InlineData("limit=-1", "limit")]
    [InlineData("after=-1", "after")]
    [InlineData("after=abc", "after")]
    public async Task a_ledger_page_with_a_bad_limit_or_cursor_is_422(string query, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/positions/SKU-1/WH1/ledger?" + query), field);
    }
}
