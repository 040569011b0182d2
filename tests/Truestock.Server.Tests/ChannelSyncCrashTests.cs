using System.Net.Http.Json;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>
/// The hub as a child process, killed with SIGKILL in the middle of a burst of changes that it is
/// publishing to a channel, then restarted: the durable outbox must bring the channel to the hub's
/// ATS for every SKU, for every connector (each against its emulator, see <see cref="ChannelEmulators"/>).
/// </summary>
[Collection(Disruptive.Name)]
public sealed class ChannelSyncCrashTests
{
    [Theory]
    [InlineData("webhook")]
    [InlineData("walmart")]
    [InlineData("shopify")]
    [InlineData("amazon")]
    public async Task a_channel_converges_after_the_hub_is_killed_mid_burst_and_restarted(string kind)
    {
        await using var storage = await TestStorage.Create();
        var channel = await ChannelEmulators.Start(kind);
        await using var _ = channel.Owner;
        string[] args = [.. storage.HubArgs, .. channel.CredentialArgs];
        var skus = Enumerable.Range(0, 200).Select(i => $"C-{i:D3}").ToArray();
        foreach (var sku in skus)
        {
            channel.AddListing(sku);
        }
        int acknowledged;

        using (var hub = new HubProcess(args))
        {
            await hub.Start();
            (await hub.Client.PutAsJsonAsync("/v1/locations/WH1", new { name = "Warehouse", type = "warehouse" })).EnsureSuccessStatusCode();
            (await hub.Client.PutAsJsonAsync("/v1/channels/web", new
            {
                name = "Web",
                locations = new[] { "WH1" },
                connector = channel.Connector,
            })).EnsureSuccessStatusCode();

            using var burst = new EventBurst(hub.Client, skus, eventsPerRequest: 20);

            // Kill while changes are still being written and published.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((burst.Acknowledged < 100 || channel.Requests() < 20) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            hub.Kill();
            acknowledged = await burst.StopAsync();
        }
        Assert.True(acknowledged >= 20, $"Only {acknowledged} requests were acknowledged before the kill.");

        using (var hub = new HubProcess(args))
        {
            await hub.Start();
            var until = DateTime.UtcNow.AddSeconds(90);
            while (true)
            {
                var sync = JsonDocument.Parse(await hub.Client.GetStringAsync("/v1/channels/web/sync")).RootElement;
                if (sync.GetProperty("pending").GetInt64() == 0)
                {
                    Assert.Equal(0, sync.GetProperty("deadLetters").GetInt64());
                    break;
                }
                Assert.True(DateTime.UtcNow < until, $"The channel did not converge after the restart:\n{hub.Output}");
                await Task.Delay(50);
            }

            var wrong = new List<string>();
            foreach (var chunk in skus.Chunk(500))
            {
                var view = JsonDocument.Parse(await hub.Client.GetStringAsync("/v1/channels/web/availability?" + string.Join('&', chunk.Select(s => "sku=" + s)))).RootElement;
                foreach (var item in view.GetProperty("items").EnumerateArray())
                {
                    var sku = item.GetProperty("sku").GetString()!;
                    var ats = item.GetProperty("available").GetInt64();
                    // A SKU that never got stock may never have been published: the channel then shows nothing, which is 0.
                    if ((channel.QuantityOf(sku) ?? 0) != ats)
                    {
                        wrong.Add($"{sku}: hub {ats}, channel {channel.QuantityOf(sku)}");
                    }
                }
            }
            Assert.True(wrong.Count == 0, "The channel disagrees with the hub after the restart: " + string.Join("; ", wrong.Take(10)));
        }
    }
}
