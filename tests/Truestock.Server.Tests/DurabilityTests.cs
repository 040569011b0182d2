using System.Text.Json;

namespace Truestock.Server.Tests;

public sealed class DurabilityTests
{
    private static readonly string[] Skus = ["A", "B", "C"];

    private static async Task Workload(HubServer hub, int rounds)
    {
        await hub.Setup();
        for (var i = 0; i < rounds; i++)
        {
            var at = HubServer.Epoch.AddMinutes(i);
            var sku = Skus[i % Skus.Length];
            await hub.Events(
                HubServer.Event("received", sku, "WH1", 5 + i, at),
                HubServer.Event("sold", sku, "S1", 1, at),
                HubServer.Event("return_received", sku, "WH1", 1, at),
                new Dictionary<string, object?>(HubServer.Event("inspected", sku, "WH1", 1, at)) { ["disposition"] = i % 2 == 0 ? "restock" : "damaged" });
            if (i % 4 == 0)
            {
                await hub.Events(HubServer.Event("counted", sku, "WH1", 3 * i, at.AddSeconds(-30)));
            }
            var reserve = await hub.Post("/v1/reservations", new { reservationId = $"r{i}", channelId = "web", lines = new[] { new { sku, quantity = 2 } } });
            Assert.True(reserve.IsSuccessStatusCode || reserve.StatusCode == System.Net.HttpStatusCode.Conflict);
            if (reserve.IsSuccessStatusCode && i % 3 == 0)
            {
                (await hub.Post($"/v1/reservations/r{i}/commit", new { })).EnsureSuccessStatusCode();
            }
        }
    }

    private static async Task<string> AllAvailability(HubServer hub)
    {
        var parts = new List<string>();
        foreach (var sku in Skus)
        {
            parts.Add((await hub.GetJson($"/v1/availability/{sku}")).GetRawText());
        }
        parts.Add((await hub.GetJson("/v1/channels")).GetRawText());
        return string.Join("\n", parts);
    }

    [Fact]
    public async Task positions_survive_a_restart_with_snapshots_taken_along_the_way()
    {
        await using var hub = await HubServer.Start("--Truestock:SnapshotEveryCommands=7");
        await Workload(hub, 24);
        var before = await AllAvailability(hub);

        await hub.Restart();

        Assert.Equal(before, await AllAvailability(hub));
    }

    [Fact]
    public async Task replaying_the_whole_journal_from_empty_yields_exactly_the_current_positions()
    {
        await using var hub = await HubServer.Start("--Truestock:SnapshotEveryCommands=5");
        await Workload(hub, 20);
        var before = await AllAvailability(hub);
        await hub.Stop();

        // Without snapshots, start-up must rebuild everything from the journal alone.
        Assert.True(hub.Storage.Execute("DELETE FROM snapshots") > 0);
        await hub.Restart();

        Assert.Equal(before, await AllAvailability(hub));
    }

    [Fact]
    public async Task an_event_sent_again_after_a_restart_is_a_duplicate_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var received = HubServer.Event("received", "A", "WH1", 7, eventId: "once");
        Assert.Equal(["applied"], await hub.Events(received));

        await hub.Restart();

        Assert.Equal(["duplicate"], await hub.Events(received));
        var changed = new Dictionary<string, object?>(received) { ["quantity"] = 8 };
        Assert.Equal(["rejected"], await hub.Events(changed));
        Assert.Equal(7, (await hub.Position("A", "WH1")).GetProperty("onHand").GetInt64());
    }

    [Fact]
    public async Task a_held_reservation_still_expires_after_a_restart()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("received", "A", "WH1", 5));
        (await hub.Post("/v1/reservations", new { reservationId = "keep", channelId = "web", ttlSeconds = 60, lines = new[] { new { sku = "A", quantity = 5 } } }))
            .EnsureSuccessStatusCode();

        await hub.Restart();
        Assert.Equal(0, (await hub.Position("A", "WH1")).GetProperty("available").GetInt64());
        await hub.Advance(TimeSpan.FromSeconds(61));

        Assert.Equal("expired", (await hub.GetJson("/v1/reservations/keep")).GetProperty("status").GetString());
        Assert.Equal(5, (await hub.Position("A", "WH1")).GetProperty("available").GetInt64());
    }

    [Fact]
    public async Task ledger_entries_carry_the_quantities_after_each_record()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("received", "A", "WH1", 10), HubServer.Event("sold", "A", "WH1", 3, HubServer.Epoch.AddMinutes(1)));
        (await hub.Post("/v1/reservations", new { reservationId = "l1", channelId = "web", lines = new[] { new { sku = "A", quantity = 2 } } }))
            .EnsureSuccessStatusCode();

        var entries = (await hub.GetJson("/v1/positions/A/WH1/ledger")).GetProperty("entries").EnumerateArray().ToArray();

        Assert.Equal(["received", "sold", "reservation_held"], entries.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal([10L, 7L, 7L], entries.Select(e => e.GetProperty("onHandAfter").GetInt64()));
        Assert.Equal([10L, 7L, 5L], entries.Select(e => e.GetProperty("availableAfter").GetInt64()));
        Assert.All(entries, e => Assert.Equal(JsonValueKind.String, e.GetProperty("recordedAt").ValueKind));
    }
}

public sealed class SingleWriterTests
{
    [Fact]
    public async Task a_second_hub_on_the_same_store_is_a_standby_until_the_first_stops_then_takes_over()
    {
        await using var first = await HubServer.Start();
        await first.Setup();
        await first.Events(HubServer.Event("received", "A", "WH1", 4));
        await using var second = await HubServer.StartOn(first.Storage, first.Time);

        var ready = await second.Client.GetAsync("/health/ready");
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("standby", (await HubServer.Json(ready)).GetProperty("role").GetString());
        Assert.Equal(4, (await second.Position("A", "WH1")).GetProperty("onHand").GetInt64());
        var refused = await second.Post("/v1/events", new { events = new[] { HubServer.Event("received", "A", "WH1", 1) } });
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, refused.StatusCode);

        await first.Stop();
        await second.Advance(TimeSpan.FromSeconds(1));
        await second.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(System.Net.HttpStatusCode.OK, (await second.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(["applied"], await second.Events(HubServer.Event("received", "A", "WH1", 1)));
        Assert.Equal(5, (await second.Position("A", "WH1")).GetProperty("onHand").GetInt64());
    }
}
