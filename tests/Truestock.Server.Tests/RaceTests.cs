using System.Net;
using System.Text.Json;

namespace Truestock.Server.Tests;

public sealed class RaceTests
{
    [Fact]
    public async Task a_thousand_concurrent_reservations_through_several_channels_hold_exactly_the_stock_and_never_oversell()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web", null, "WH1", "S1");
        await hub.Setup("amazon", null, "WH1", "S1");
        await hub.Setup("app", null, "S1", "WH1");
        Assert.All(await hub.Events(
            HubServer.Event("received", "HOT", "WH1", 60),
            HubServer.Event("received", "HOT", "S1", 40)), s => Assert.Equal("applied", s));

        string[] channels = ["web", "amazon", "app"];
        using var gate = new SemaphoreSlim(0);
        var attempts = Enumerable.Range(0, 1000).Select(async i =>
        {
            await gate.WaitAsync();
            var response = await hub.Post("/v1/reservations", new
            {
                reservationId = $"race-{i}",
                channelId = channels[i % channels.Length],
                lines = new[] { new { sku = "HOT", quantity = 1 } },
            });
            return response.StatusCode;
        }).ToArray();
        gate.Release(attempts.Length);
        var statuses = await Task.WhenAll(attempts);

        Assert.Equal(100, statuses.Count(s => s == HttpStatusCode.Created));
        Assert.Equal(900, statuses.Count(s => s == HttpStatusCode.Conflict));
        var view = await hub.GetJson("/v1/availability/HOT");
        var locations = view.GetProperty("locations").EnumerateArray().ToArray();
        Assert.Equal(100, locations.Sum(l => l.GetProperty("reserved").GetInt64()));
        Assert.All(locations, l => Assert.Equal(0, l.GetProperty("available").GetInt64()));
        Assert.All(view.GetProperty("channels").EnumerateArray(), c => Assert.Equal(0, c.GetProperty("available").GetInt64()));
        var oversells = await hub.GetJson("/v1/exceptions?type=oversell");
        Assert.Equal(0, oversells.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task concurrent_multi_line_reservations_are_all_or_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("received", "A", "WH1", 50), HubServer.Event("received", "B", "WH1", 30));

        var attempts = Enumerable.Range(0, 200).Select(i => hub.Post("/v1/reservations", new
        {
            reservationId = $"pair-{i}",
            channelId = "web",
            lines = new[] { new { sku = "A", quantity = 1 }, new { sku = "B", quantity = 1 } },
        })).ToArray();
        var responses = await Task.WhenAll(attempts);

        Assert.Equal(30, responses.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(30, (await hub.Position("A", "WH1")).GetProperty("reserved").GetInt64());
        Assert.Equal(30, (await hub.Position("B", "WH1")).GetProperty("reserved").GetInt64());
        var shortage = await HubServer.Json(responses.First(r => r.StatusCode == HttpStatusCode.Conflict));
        Assert.EndsWith("insufficient-stock", shortage.GetProperty("type").GetString());
        Assert.Equal("B", shortage.GetProperty("shortages")[0].GetProperty("sku").GetString());
    }
}
