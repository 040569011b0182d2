using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// Polling sources: a hub polls a stock-level source emulator and turns differences into counted
/// events as of the source's timestamps. Polls are triggered by moving the hub's fake clock past
/// the next poll; nothing here depends on how fast anything runs.
/// </summary>
public sealed class PollingSourceTests
{
    private const string SourceId = "wms1";
    private const string Prefix = "--Truestock:PollingSources:" + SourceId + ":";

    // The source's clock: its snapshot was taken ten minutes before the hub's (HubServer.Epoch is 09:00Z).
    private static readonly DateTimeOffset SnapshotAt = HubServer.Epoch.AddMinutes(-10);

    /// <summary>A hub polling <paramref name="source"/> every 5 s, its locations A and B mapped to WH1 and S1 (both declared).</summary>
    private static Task<HubServer> PolledHub(StockLevelSourceEmulator source, params string[] extraArgs) => PolledHub(source, null, extraArgs);

    private static async Task<HubServer> PolledHub(StockLevelSourceEmulator source, string? apiKey, string[] extraArgs)
    {
        var hub = await HubServer.Start([
            Prefix + "Url=" + source.Url,
            Prefix + "IntervalSeconds=5",
            Prefix + "LocationMap:A=WH1",
            Prefix + "LocationMap:B=S1",
            .. extraArgs,
        ]);
        if (apiKey is not null)
        {
            hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
        await hub.Setup("web");
        return hub;
    }

    /// <summary>
    /// Moves the hub's clock past the next poll (the first comes 1–5 s after start, the next 4.5–5.5 s
    /// after the previous one started, a retry 1–2 s after a failure) and waits until that attempt is
    /// recorded; returns the source's status then.
    /// </summary>
    private static async Task<JsonElement> PollOnce(HubServer hub)
    {
        var before = (await Status(hub)).GetProperty("polls").GetInt64();
        await hub.Advance(TimeSpan.FromSeconds(6));
        // A guard against a hang, not a timing requirement: a poll of a local emulator ends at once.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var status = await Status(hub);
            if (status.GetProperty("polls").GetInt64() > before)
            {
                return status;
            }
            Assert.True(DateTime.UtcNow < deadline, $"No poll was recorded after moving the clock: {status}");
            await Task.Delay(10);
        }
    }

    private static async Task<JsonElement> Status(HubServer hub) =>
        (await hub.GetJson("/v1/sources/polling")).GetProperty("sources").EnumerateArray().Single(s => s.GetProperty("sourceId").GetString() == SourceId);

    private static long OnHand(JsonElement position) => position.GetProperty("onHand").GetInt64();

    private static string? Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ToString() : null;

    private static Task Receive(HubServer hub, string sku, string locationId, long quantity) =>
        hub.Events(HubServer.Event("received", sku, locationId, quantity, HubServer.Epoch.AddHours(-1)));

    // ------------------------------------------------------------------ differences

    [Fact]
    public async Task a_poll_turns_differences_into_counted_events_with_the_source_timestamp()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);
        source.SetLevel("MUG-BLUE", "B", 3, countedAt: SnapshotAt.AddMinutes(-20));

        var status = await PollOnce(hub);

        var poll = status.GetProperty("lastPoll");
        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(2, poll.GetProperty("itemsRead").GetInt64());
        Assert.Equal(2, poll.GetProperty("countsEmitted").GetInt64());
        Assert.Equal(2, poll.GetProperty("applied").GetInt64());
        Assert.Equal(2, status.GetProperty("countsEmitted").GetInt64());
        Assert.Equal(HubServer.Epoch.AddSeconds(6), status.GetProperty("lastSuccessAt").GetDateTimeOffset());
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
        Assert.Equal(3, OnHand(await hub.Position("MUG-BLUE", "S1")));

        var count = (await HubServer.WholeLedger(hub.Client, "TSHIRT-M", "WH1"))[^1];
        Assert.Equal("counted", count.GetProperty("type").GetString());
        Assert.Equal(7, count.GetProperty("quantity").GetInt64());
        Assert.Equal(SnapshotAt, count.GetProperty("occurredAt").GetDateTimeOffset());
        Assert.Equal(SourceId, count.GetProperty("source").GetString());
        Assert.Equal("applied", count.GetProperty("status").GetString());
        Assert.Equal(poll.GetProperty("correlationId").GetString(), count.GetProperty("correlationId").GetString());
        // An item's own countedAt wins over the page's asOf.
        var mug = (await HubServer.WholeLedger(hub.Client, "MUG-BLUE", "S1")).Single();
        Assert.Equal(SnapshotAt.AddMinutes(-20), mug.GetProperty("occurredAt").GetDateTimeOffset());

        var metrics = await hub.Client.GetStringAsync("/metrics");
        Assert.Contains("truestock_polling_polls_total{source=\"wms1\",outcome=\"succeeded\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("truestock_polling_counts_total{source=\"wms1\"} 2", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task positions_equal_to_the_hub_produce_no_event()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 10);
        source.SetLevel("NEVER-SEEN", "B", 0);

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(2, poll.GetProperty("itemsRead").GetInt64());
        Assert.Equal(2, poll.GetProperty("unchanged").GetInt64());
        Assert.Equal(0, poll.GetProperty("countsEmitted").GetInt64());
        Assert.Single(await HubServer.WholeLedger(hub.Client, "TSHIRT-M", "WH1"));
        Assert.Empty(await HubServer.WholeLedger(hub.Client, "NEVER-SEEN", "S1"));
    }

    [Fact]
    public async Task a_repoll_of_the_same_snapshot_is_a_duplicate_and_never_a_double_count()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);
        await PollOnce(hub);
        // A sale after the snapshot: the hub now differs from the snapshot, which has not changed.
        Assert.Equal(["applied"], await hub.Events(HubServer.Event("sold", "TSHIRT-M", "WH1", 2, SnapshotAt.AddMinutes(1))));

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        Assert.Equal(1, poll.GetProperty("countsEmitted").GetInt64());
        Assert.Equal(1, poll.GetProperty("duplicate").GetInt64());
        Assert.Equal(0, poll.GetProperty("applied").GetInt64());
        Assert.Equal(5, OnHand(await hub.Position("TSHIRT-M", "WH1")));
        Assert.Equal(["received", "counted", "sold"],
            (await HubServer.WholeLedger(hub.Client, "TSHIRT-M", "WH1")).Select(e => e.GetProperty("type").GetString()));
    }

    [Fact]
    public async Task a_count_as_of_the_source_timestamp_keeps_the_movements_the_hub_recorded_after_it()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        // The hub hears of a sale at 08:55 before the poll; the source's snapshot of 08:50 has not seen it.
        await hub.Events(HubServer.Event("sold", "TSHIRT-M", "WH1", 1, SnapshotAt.AddMinutes(5)));
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 8);

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        // onHand := 8 as of 08:50, plus the sale after it: the count never undoes a movement it did not see.
        Assert.Equal(1, poll.GetProperty("applied").GetInt64());
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
    }

    [Fact]
    public async Task an_older_snapshot_after_a_newer_one_does_not_move_on_hand_back()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);
        await PollOnce(hub);
        // A replica of the source lagging an hour behind answers the next poll.
        source.AsOf = SnapshotAt.AddHours(-1);
        source.SetLevel("TSHIRT-M", "A", 9);

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(1, poll.GetProperty("stale").GetInt64());
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
        var last = (await HubServer.WholeLedger(hub.Client, "TSHIRT-M", "WH1"))[^1];
        Assert.Equal("stale", last.GetProperty("status").GetString());
        Assert.Equal(9, last.GetProperty("quantity").GetInt64());
    }

    // ------------------------------------------------------------------ pages and items

    [Fact]
    public async Task pages_are_followed_to_the_end()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync(new StockLevelSourceEmulatorOptions { PageSize = 2 });
        await using var hub = await PolledHub(source);
        source.AsOf = SnapshotAt;
        for (var i = 1; i <= 5; i++)
        {
            source.SetLevel($"SKU-{i}", "A", i);
        }

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(3, poll.GetProperty("pages").GetInt32());
        Assert.Equal(5, poll.GetProperty("applied").GetInt64());
        for (var i = 1; i <= 5; i++)
        {
            Assert.Equal(i, OnHand(await hub.Position($"SKU-{i}", "WH1")));
        }
        Assert.Equal(["?limit=1000", "?limit=1000&cursor=o2", "?limit=1000&cursor=o4"], source.Queries);
    }

    [Fact]
    public async Task a_malformed_page_applies_nothing_and_the_error_is_visible_in_the_status()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);
        source.BreakPage(1);

        var status = await PollOnce(hub);

        Assert.Equal("malformed", status.GetProperty("lastPoll").GetProperty("outcome").GetString());
        Assert.Contains("Page 1 breaks the wire format", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Contains("not valid JSON", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, status.GetProperty("consecutiveFailures").GetInt32());
        Assert.False(status.TryGetProperty("lastSuccessAt", out _));
        Assert.Equal(10, OnHand(await hub.Position("TSHIRT-M", "WH1")));
        Assert.Contains("truestock_polling_polls_total{source=\"wms1\",outcome=\"malformed\"} 1",
            await hub.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);

        // Once the source is fixed, the next poll applies, and the error stays on record with its time.
        source.HealPages();
        status = await PollOnce(hub);
        Assert.Equal("succeeded", status.GetProperty("lastPoll").GetProperty("outcome").GetString());
        Assert.Equal(0, status.GetProperty("consecutiveFailures").GetInt32());
        Assert.True(status.TryGetProperty("lastErrorAt", out _));
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
    }

    [Fact]
    public async Task a_malformed_later_page_keeps_the_pages_before_it_and_applies_nothing_of_its_own()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync(new StockLevelSourceEmulatorOptions { PageSize = 2 });
        await using var hub = await PolledHub(source);
        source.AsOf = SnapshotAt;
        source.SetLevel("SKU-1", "A", 1);
        source.SetLevel("SKU-2", "A", 2);
        source.SetLevel("SKU-3", "A", 3);
        source.BreakPage(2, """{"asOf":"2026-11-23T08:50:00Z","items":"none"}""");

        var status = await PollOnce(hub);

        var poll = status.GetProperty("lastPoll");
        Assert.Equal("malformed", poll.GetProperty("outcome").GetString());
        Assert.Equal(1, poll.GetProperty("pages").GetInt32());
        Assert.Contains("Page 2", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Contains("items", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, OnHand(await hub.Position("SKU-1", "WH1")));
        Assert.Equal(2, OnHand(await hub.Position("SKU-2", "WH1")));
        Assert.Equal(0, OnHand(await hub.Position("SKU-3", "WH1")));
    }

    [Fact]
    public async Task items_that_break_the_rules_are_reported_and_skipped_while_the_others_apply()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        // C maps to a location the hub has not declared.
        await using var hub = await PolledHub(source, Prefix + "LocationMap:C=DC9");
        source.AsOf = SnapshotAt;
        source.SetLevel("GOOD", "A", 4);
        source.SetLevel("ELSEWHERE", "Z", 1);
        source.SetLevel("UNDECLARED", "C", 1);
        source.SetLevel("NOWHERE", null, 1);
        source.SetLevel("FUTURE", "A", 1, countedAt: HubServer.Epoch.AddHours(2));
        source.AddRawItem("""{"sku":"NEGATIVE","location":"A","onHand":-1}""");
        source.AddRawItem("""{"location":"A","onHand":3}""");
        source.AddRawItem("42");

        var poll = (await PollOnce(hub)).GetProperty("lastPoll");

        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(8, poll.GetProperty("itemsRead").GetInt64());
        Assert.Equal(1, poll.GetProperty("applied").GetInt64());
        Assert.Equal(7, poll.GetProperty("itemErrorsTotal").GetInt64());
        Assert.Equal(4, OnHand(await hub.Position("GOOD", "WH1")));
        var errors = poll.GetProperty("itemErrors").EnumerateArray()
            .Select(e => (Sku: Text(e, "sku"), Type: e.GetProperty("type").GetString()!.Split('/')[^1])).ToList();
        Assert.Contains(("ELSEWHERE", "unmapped-location"), errors);
        Assert.Contains(("NOWHERE", "unmapped-location"), errors);
        Assert.Contains(("UNDECLARED", "unknown-location"), errors);
        Assert.Contains(("FUTURE", "future-timestamp"), errors);
        Assert.Contains((null, "invalid-item"), errors);
        Assert.Equal(3, errors.Count(e => e.Type == "invalid-item"));
        var negative = poll.GetProperty("itemErrors").EnumerateArray().Single(e => e.GetProperty("detail").GetString()!.Contains("onHand", StringComparison.Ordinal));
        Assert.Equal(1, negative.GetProperty("page").GetInt32());
    }

    // ------------------------------------------------------------------ failures

    [Fact]
    public async Task an_authentication_failure_is_visible_in_the_status_and_the_secret_is_never_shown()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync(new StockLevelSourceEmulatorOptions { AuthValue = "Bearer right-token" });
        await using var hub = await PolledHub(source,
            Prefix + "Credentials=wms1-api",
            "--Truestock:Credentials:wms1-api:authHeaderValue=Bearer wrong-token");
        await Receive(hub, "TSHIRT-M", "WH1", 10);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);

        var status = await PollOnce(hub);

        Assert.Equal("unauthorized", status.GetProperty("lastPoll").GetProperty("outcome").GetString());
        Assert.Contains("401", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Contains("Truestock:Credentials:wms1-api:authHeaderValue", status.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, source.AuthFailures);
        Assert.Equal(10, OnHand(await hub.Position("TSHIRT-M", "WH1")));
        var everything = (await hub.GetJson("/v1/sources/polling")).ToString() + await hub.Client.GetStringAsync("/metrics");
        Assert.DoesNotContain("wrong-token", everything, StringComparison.Ordinal);
        // Refused credentials are not retried before the next interval: a retry would be refused the same way.
        Assert.Equal(1, source.Requests);
    }

    [Fact]
    public async Task the_secret_goes_in_the_configured_header()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync(new StockLevelSourceEmulatorOptions { AuthHeader = "X-Api-Key", AuthValue = "k-2f9c" });
        await using var hub = await PolledHub(source,
            Prefix + "Credentials=wms1-api",
            Prefix + "AuthHeader=X-Api-Key",
            "--Truestock:Credentials:wms1-api:authHeaderValue=k-2f9c");
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);

        var status = await PollOnce(hub);

        Assert.Equal("succeeded", status.GetProperty("lastPoll").GetProperty("outcome").GetString());
        Assert.Equal(0, source.AuthFailures);
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
    }

    [Fact]
    public async Task a_transient_failure_is_retried_with_backoff_and_then_applies()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source);
        source.AsOf = SnapshotAt;
        source.SetLevel("TSHIRT-M", "A", 7);
        source.Faults.FailNext(1);

        var failed = await PollOnce(hub);
        Assert.Equal("http_error", failed.GetProperty("lastPoll").GetProperty("outcome").GetString());
        Assert.Contains("503", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);

        var retried = await PollOnce(hub);
        var poll = retried.GetProperty("lastPoll");
        Assert.Equal("succeeded", poll.GetProperty("outcome").GetString());
        Assert.Equal(1, poll.GetProperty("attempt").GetInt32());
        Assert.Equal(2, retried.GetProperty("polls").GetInt64());
        Assert.Equal(1, retried.GetProperty("failures").GetInt64());
        Assert.Equal(7, OnHand(await hub.Position("TSHIRT-M", "WH1")));
    }

    // ------------------------------------------------------------------ configuration and status

    [Theory]
    [InlineData("IntervalSeconds=1", "Truestock:PollingSources:wms1:IntervalSeconds must be 5–86,400")]
    [InlineData("Url=ftp://wms.example/levels", "Truestock:PollingSources:wms1:Url must be an absolute http or https address")]
    [InlineData("Url=https://user:pass@wms.example/levels", "Truestock:PollingSources:wms1:Url must not carry a user name or password")]
    [InlineData("Credentials=missing-set", "Truestock:Credentials:missing-set:authHeaderValue is not set")]
    [InlineData("LocationMap:C=WH1", "Truestock:PollingSources:wms1:LocationMap maps both 'A' and 'C' to 'WH1'")]
    [InlineData("PageSizeMax=0", "Truestock:PollingSources:wms1:PageSizeMax must be 1–10,000")]
    [InlineData("IntervalSecs=60", "Truestock:PollingSources:wms1 has unknown setting(s) 'IntervalSecs'")]
    [InlineData("TimeoutSeconds=soon", "Truestock:PollingSources:wms1:TimeoutSeconds")]
    public async Task bad_configuration_fails_at_start_naming_the_setting(string setting, string expected)
    {
        await using var storage = await TestStorage.Create();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => HubServer.StartOn(storage, new FakeTimeProvider(HubServer.Epoch),
            Prefix + "Url=http://127.0.0.1:9/levels",
            Prefix + "LocationMap:A=WH1",
            Prefix + setting));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task plain_http_with_a_secret_to_another_host_fails_at_start()
    {
        await using var storage = await TestStorage.Create();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => HubServer.StartOn(storage, new FakeTimeProvider(HubServer.Epoch),
            Prefix + "Url=http://wms.example/levels",
            Prefix + "DefaultLocationId=WH1",
            Prefix + "Credentials=wms1-api",
            "--Truestock:Credentials:wms1-api:authHeaderValue=Bearer t"));
        Assert.Contains("Truestock:PollingSources:wms1:Url is plain http", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Bearer t", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task the_status_lists_every_source_and_needs_the_admin_scope()
    {
        await using var source = await StockLevelSourceEmulator.StartAsync();
        await using var hub = await PolledHub(source, "admin-key", [
            "--Truestock:PollingSources:old-erp:Enabled=false",
            "--Truestock:ApiKeys:0:Name=ops", "--Truestock:ApiKeys:0:Key=admin-key", "--Truestock:ApiKeys:0:Scopes:0=admin",
            "--Truestock:ApiKeys:1:Name=shop", "--Truestock:ApiKeys:1:Key=reader-key", "--Truestock:ApiKeys:1:Scopes:0=availability:read",
        ]);

        var sources = (await hub.GetJson("/v1/sources/polling")).GetProperty("sources").EnumerateArray().ToList();

        Assert.Equal(["old-erp", "wms1"], sources.Select(s => s.GetProperty("sourceId").GetString()));
        Assert.False(sources[0].GetProperty("enabled").GetBoolean());
        Assert.Equal("disabled", sources[0].GetProperty("state").GetString());
        Assert.Equal("waiting", sources[1].GetProperty("state").GetString());
        Assert.Equal(source.Url.ToString(), sources[1].GetProperty("url").GetString());
        Assert.Equal(5, sources[1].GetProperty("intervalSeconds").GetInt32());
        Assert.True(sources[1].TryGetProperty("nextPollAt", out _));

        using var reader = new HttpRequestMessage(HttpMethod.Get, "/v1/sources/polling");
        reader.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "reader-key");
        Assert.Equal(HttpStatusCode.Forbidden, (await hub.Client.SendAsync(reader)).StatusCode);
    }
}
