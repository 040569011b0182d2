using System.Net.Http.Json;
using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// The hub as a child process, killed with SIGKILL while it is posting a stream of movements to a slow ERP, then
/// restarted: the durable outbox must bring every movement to the ERP, and the keys must keep the ERP from booking any
/// of them twice, even those it booked just before the kill without the hub recording it.
/// </summary>
[Collection(Disruptive.Name)]
public sealed class ErpPostingCrashTests
{
    private const string ApiKey = "crash-erp-key";

    [Fact]
    public async Task the_erp_books_every_movement_exactly_once_after_the_hub_is_killed_mid_stream_and_restarted()
    {
        await using var storage = await TestStorage.Create();
        await using var erp = await GenericErpEmulator.StartAsync(new GenericErpEmulatorOptions { ApiKey = ApiKey });
        // A slow ERP keeps requests in flight, so the kill is likely to land between a booking and its record.
        erp.SlowDown(TimeSpan.FromMilliseconds(30));
        string[] args =
        [
            .. storage.HubArgs,
            "--Truestock:Erp:Kind=rest",
            $"--Truestock:Erp:Url={erp.Url}",
            $"--Truestock:Credentials:erp:apiKey={ApiKey}",
            "--Truestock:Erp:RequestsPerSecondMax=500",
            "--Truestock:Erp:BatchSizeMax=10",
            "--Truestock:Erp:ConcurrencyMax=4",
            "--Truestock:Erp:PollMilliseconds=20",
            "--Truestock:Erp:BackoffSecondsMax=1",
        ];
        var skus = Enumerable.Range(0, 50).Select(i => $"E-{i:D2}").ToArray();
        int acknowledged;

        using (var hub = new HubProcess(args))
        {
            await hub.Start();
            (await hub.Client.PutAsJsonAsync("/v1/locations/WH1", new { name = "Warehouse", type = "warehouse" })).EnsureSuccessStatusCode();
            using var burst = new EventBurst(hub.Client, skus, eventsPerRequest: 10);

            // Kill while movements are still being written and the ERP is behind.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((burst.Acknowledged < 60 || erp.BookedCount < 100) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            hub.Kill();
            acknowledged = await burst.StopAsync();
        }
        Assert.True(acknowledged >= 20, $"Only {acknowledged} requests were acknowledged before the kill.");
        erp.SlowDown(null);

        using (var hub = new HubProcess(args))
        {
            await hub.Start();
            var until = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                var status = JsonDocument.Parse(await hub.Client.GetStringAsync("/v1/erp/status")).RootElement;
                if (status.GetProperty("backlog").GetInt64() == 0)
                {
                    Assert.Equal(0, status.GetProperty("deadLetters").GetInt64());
                    break;
                }
                Assert.True(DateTime.UtcNow < until, $"The ERP backlog did not drain after the restart:\n{hub.Output}");
                await Task.Delay(50);
            }

            var positions = skus.Select(s => (s, "WH1")).ToList();
            var expected = await ErpPostingTests.LedgerMovements(hub.Client, positions);
            Assert.True(expected.Count >= 200, $"Only {expected.Count} movements were acknowledged before the kill.");
            ErpPostingTests.AssertBookedExactlyOnce(erp, expected);
            foreach (var sku in skus)
            {
                var view = JsonDocument.Parse(await hub.Client.GetStringAsync($"/v1/availability/{sku}")).RootElement;
                var onHand = view.GetProperty("locations").EnumerateArray().Single(l => l.GetProperty("locationId").GetString() == "WH1").GetProperty("onHand").GetInt64();
                Assert.Equal(onHand, erp.OnHand(sku, "WH1"));
            }
        }
    }
}
