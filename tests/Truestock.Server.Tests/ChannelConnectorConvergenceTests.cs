using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// Each connector through the whole pipeline, against its emulator (see <see cref="ChannelEmulators"/>).
/// </summary>
public sealed class ChannelConnectorConvergenceTests
{
    [Theory]
    [InlineData("webhook")]
    [InlineData("walmart")]
    [InlineData("shopify")]
    [InlineData("amazon")]
    public async Task after_a_burst_and_a_quiet_period_the_channel_shows_the_hub_ats_for_every_sku(string kind)
    {
        var emulated = await ChannelEmulators.Start(kind);
        await using var _ = emulated.Owner;
        await using var hub = await HubServer.Start([.. emulated.CredentialArgs, "--Truestock:ChannelPollMilliseconds=20"]);
        var skus = Enumerable.Range(0, 200).Select(i => $"{kind.ToUpperInvariant()}-{i:D3}").ToArray();
        foreach (var sku in skus)
        {
            emulated.AddListing(sku);
        }
        await hub.Setup("web", new { connector = emulated.Connector });

        var random = new Random(11);
        var changes = 0;
        for (var batch = 0; batch < 3; batch++)
        {
            var events = Enumerable.Range(0, 1000).Select(_ => (object)(random.Next(4) == 0
                ? HubServer.Event("sold", skus[random.Next(skus.Length)], random.Next(2) == 0 ? "WH1" : "S1", random.Next(1, 3))
                : HubServer.Event("received", skus[random.Next(skus.Length)], random.Next(2) == 0 ? "WH1" : "S1", random.Next(1, 6)))).ToArray();
            await hub.Events(events);
            changes += events.Length;
        }

        // The quiet period: no more changes; the hub's clock moves so that retries come due.
        await Until(hub, s => s.Long("pending") == 0, $"{kind}: every change is published");
        var sync = await hub.GetJson("/v1/channels/web/sync");

        Assert.Equal(0, sync.Long("deadLetters"));
        var wrong = new List<string>();
        var view = await hub.GetJson("/v1/channels/web/availability?" + string.Join('&', skus.Select(s => "sku=" + s)));
        foreach (var item in view.GetProperty("items").EnumerateArray())
        {
            var shown = emulated.QuantityOf(item.Str("sku"));
            if (shown != item.Long("available"))
            {
                wrong.Add($"{item.Str("sku")}: hub {item.Long("available")}, channel {shown}");
            }
        }
        Assert.True(wrong.Count == 0, $"{kind}: the channel disagrees with the hub: " + string.Join("; ", wrong.Take(10)));
        Assert.True(emulated.Requests() < changes / 2, $"{kind}: {emulated.Requests()} calls for {changes} changes: not coalesced.");
        Assert.True(emulated.Throttled() <= 5, $"{kind}: {emulated.Throttled()} throttled answers: the connector did not keep to the limits.");
    }

    [Theory]
    [InlineData("webhook")]
    [InlineData("walmart")]
    [InlineData("shopify")]
    [InlineData("amazon")]
    public async Task a_permanent_error_dead_letters_the_sku_with_the_channel_error_and_replay_fixes_it(string kind)
    {
        var emulated = await ChannelEmulators.Start(kind);
        await using var _ = emulated.Owner;
        await using var hub = await HubServer.Start([.. emulated.CredentialArgs, "--Truestock:ChannelPollMilliseconds=20"]);
        emulated.AddListing("FINE");
        emulated.AddListing("BROKEN");
        emulated.Faults.BreakSku("BROKEN");
        await hub.Setup("web", new { connector = emulated.Connector });

        await hub.Receive("FINE", "WH1", 5);
        await hub.Receive("BROKEN", "WH1", 7);
        await Until(hub, s => s.Long("deadLetters") == 1 && s.Long("pending") == 0, $"{kind}: the broken SKU is dead-lettered");

        var letter = await hub.GetJson("/v1/channels/web/dead-letters/BROKEN");
        Assert.False(string.IsNullOrWhiteSpace(letter.Str("error")), $"{kind}: the dead letter carries the channel's error");
        Assert.Equal(5, emulated.QuantityOf("FINE"));

        emulated.Faults.Heal("BROKEN");
        await hub.PostEmpty("/v1/channels/web/dead-letters/BROKEN/replay");
        await Until(hub, s => s.Long("deadLetters") == 0 && s.Long("pending") == 0, $"{kind}: the replay is published");

        Assert.Equal(7, emulated.QuantityOf("BROKEN"));
    }

    /// <summary>Waits for a sync status, moving the hub's clock so that retries come due.</summary>
    private static async Task Until(HubServer hub, Func<JsonElement, bool> condition, string what)
    {
        var until = DateTime.UtcNow.AddSeconds(90);
        while (!condition(await hub.GetJson("/v1/channels/web/sync")))
        {
            Assert.True(DateTime.UtcNow < until, $"Timed out waiting until {what}.");
            await hub.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(50);
        }
    }
}
