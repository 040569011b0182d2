using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>
/// The hub as a child process, killed with SIGKILL while writes are in flight, then restarted on
/// the same data file: every acknowledged write must be there exactly once, and no request that
/// was not acknowledged may be half applied.
/// </summary>
[Collection(Disruptive.Name)]
public sealed class CrashTests
{
    private const int EventsPerRequest = 5;

    [Fact]
    public async Task every_acknowledged_write_survives_sigkill_exactly_once_and_nothing_unacknowledged_is_half_applied()
    {
        await using var storage = await TestStorage.Create();
        var acknowledged = new ConcurrentBag<int>();
        var acknowledgedReservations = new ConcurrentBag<string>();
        var sent = 0;

        using (var hub = new HubProcess(storage.HubArgs))
        {
            await hub.Start();
            (await hub.Client.PutAsJsonAsync("/v1/locations/WH1", new { name = "Warehouse", type = "warehouse" })).EnsureSuccessStatusCode();
            (await hub.Client.PutAsJsonAsync("/v1/channels/web", new { name = "Web", locations = new[] { "WH1" } })).EnsureSuccessStatusCode();

            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var request = Interlocked.Increment(ref sent);
                    var events = Enumerable.Range(0, EventsPerRequest).Select(k => HubServer.Event("received", "K", "WH1", 1,
                        eventId: $"crash-{request}-{k}")).ToArray();
                    try
                    {
                        var response = await hub.Client.PostAsJsonAsync("/v1/events", new { events });
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            acknowledged.Add(request);
                        }
                        if (request % 4 == 0)
                        {
                            var reserve = await hub.Client.PostAsJsonAsync("/v1/reservations",
                                new { reservationId = $"crash-r{request}", channelId = "web", lines = new[] { new { sku = "K", quantity = 1 } } });
                            if (reserve.StatusCode == HttpStatusCode.Created)
                            {
                                acknowledgedReservations.Add($"crash-r{request}");
                            }
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return; // The process is gone: this request may or may not have been applied.
                    }
                    catch (TaskCanceledException)
                    {
                        return;
                    }
                }
            })).ToArray();

            // Kill once a good number of writes have been acknowledged, with writers still running.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (acknowledged.Count < 200 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
            hub.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(writers);
        }

        Assert.True(acknowledged.Count >= 50, $"Only {acknowledged.Count} requests were acknowledged before the kill.");

        using (var hub = new HubProcess(storage.HubArgs))
        {
            await hub.Start();
            var ledger = await HubServer.WholeLedger(hub.Client, "K", "WH1");

            var appliedEvents = ledger.Where(e => e.GetProperty("type").GetString() == "received")
                .Select(e => e.GetProperty("eventId").GetString()!).ToList();
            Assert.Equal(appliedEvents.Count, appliedEvents.Distinct().Count());

            // Every acknowledged request is there, all of its events.
            var present = appliedEvents.ToHashSet();
            foreach (var request in acknowledged)
            {
                for (var k = 0; k < EventsPerRequest; k++)
                {
                    Assert.Contains($"crash-{request}-{k}", present);
                }
            }
            // A request is applied whole or not at all.
            foreach (var group in appliedEvents.GroupBy(id => id[..id.LastIndexOf('-')]))
            {
                Assert.Equal(EventsPerRequest, group.Count());
            }

            var availability = JsonDocument.Parse(await hub.Client.GetStringAsync("/v1/availability/K")).RootElement;
            var position = availability.GetProperty("locations").EnumerateArray().Single(l => l.GetProperty("locationId").GetString() == "WH1");
            Assert.Equal(appliedEvents.Count, position.GetProperty("onHand").GetInt64());
            var heldInLedger = ledger.Count(e => e.GetProperty("type").GetString() == "reservation_held");
            Assert.Equal(heldInLedger, position.GetProperty("reserved").GetInt64());
            foreach (var id in acknowledgedReservations)
            {
                var r = JsonDocument.Parse(await hub.Client.GetStringAsync($"/v1/reservations/{id}")).RootElement;
                Assert.Equal("held", r.GetProperty("status").GetString());
            }

            // Sending every acknowledged event again changes nothing: each is a duplicate.
            var again = acknowledged.Take(20).SelectMany(request => Enumerable.Range(0, EventsPerRequest)
                .Select(k => HubServer.Event("received", "K", "WH1", 1, eventId: $"crash-{request}-{k}"))).ToArray();
            var results = JsonDocument.Parse(await (await hub.Client.PostAsJsonAsync("/v1/events", new { events = again })).Content.ReadAsStringAsync()).RootElement;
            Assert.All(results.GetProperty("results").EnumerateArray(), r => Assert.Equal("duplicate", r.GetProperty("status").GetString()));
            var after2 = JsonDocument.Parse(await hub.Client.GetStringAsync("/v1/availability/K")).RootElement;
            Assert.Equal(appliedEvents.Count, after2.GetProperty("locations").EnumerateArray()
                .Single(l => l.GetProperty("locationId").GetString() == "WH1").GetProperty("onHand").GetInt64());
        }
    }
}
