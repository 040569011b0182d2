using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Truestock.Connectors.Emulators;
using Truestock.Server.Exceptions;

namespace Truestock.Server.Tests;

/// <summary>
/// The exceptions workflow: one list over engine exceptions, channel and ERP dead letters and drift; status, assignee,
/// notes and the audit trail; dead letters resolved by replay or discard; the Raise API reconciliation uses.
/// </summary>
public sealed class ExceptionWorkflowTests
{
    private const string Secret = "test-webhook-secret";

    private static ExceptionWorkflow Workflow(HubServer hub) => new(hub.Journal, hub.Time);

    private static async Task<(HubServer Hub, WebhookEmulator Channel)> StartWithChannel(params string[] extraArgs)
    {
        var channel = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = Secret, RequireListings = true });
        // Only the SKUs a test means to dead-letter are unknown to the channel.
        channel.AddListing("GOOD");
        channel.AddListing("OVER");
        var hub = await HubServer.Start([$"--Truestock:Credentials:web:secret={Secret}", "--Truestock:ChannelPollMilliseconds=20", .. extraArgs]);
        var connector = new Dictionary<string, object?>
        {
            ["kind"] = "webhook",
            ["url"] = channel.Url.ToString(),
            ["requestsPerSecondMax"] = 1000,
            ["timeoutSeconds"] = 2,
        };
        await hub.Setup("web", new { connector });
        return (hub, channel);
    }

    /// <summary>Polls until the condition holds (real time: the publisher runs beside the test).</summary>
    private static async Task Eventually(Func<Task<bool>> condition, string what, int seconds = 60)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"Timed out waiting until {what}.");
            await Task.Delay(20);
        }
    }

    private static async Task<JsonElement[]> Items(HubServer hub, string query = "")
    {
        var page = await hub.GetJson("/v1/exceptions" + query);
        return page.GetProperty("items").EnumerateArray().ToArray();
    }

    private static string[] Keys(IEnumerable<JsonElement> items) => items.Select(i => i.Str("key")).ToArray();

    private static Task<HttpResponseMessage> Patch(HubServer hub, string key, object body) =>
        hub.Client.PatchAsJsonAsync("/v1/exceptions/" + key, body);

    private static Task<HttpResponseMessage> Note(HubServer hub, string key, object body) =>
        hub.Client.PostAsJsonAsync($"/v1/exceptions/{key}/notes", body);

    /// <summary>A channel dead letter for a SKU the emulator does not list.</summary>
    private static async Task DeadLetter(HubServer hub, string sku = "MISSING")
    {
        await hub.Receive(sku, "WH1", 7);
        await Eventually(async () => (await hub.GetJson("/v1/channels/web/sync")).Long("deadLetters") >= 1, "the unknown listing is dead-lettered");
    }

    // ------------------------------------------------------------------ one list

    [Fact]
    public async Task the_list_holds_engine_exceptions_drift_and_channel_dead_letters_each_with_a_stable_key_and_workflow_fields()
    {
        var (hub, channel) = await StartWithChannel();
        await using var _ = hub;
        await using var __ = channel;
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 3, eventId: "oversell-1"));
        await DeadLetter(hub);
        var raised = Workflow(hub).Raise("drift", "DRIFT-1", "WH1", "web", -4, "The ERP shows 6, the hub 10.",
            new DriftFigures(Expected: 10, Reported: 6, System: "erp", Reference: "run:1"));

        var items = await Items(hub);

        Assert.Equal(["negative-on-hand", "oversell", "drift", "channel-dead-letter"], items.Select(i => i.Str("kind")).ToArray());
        Assert.All(items, i => Assert.Equal("open", i.Str("status")));
        Assert.All(items, i => Assert.Equal(i.Str("kind"), i.Str("type")));
        var oversell = items[1];
        Assert.StartsWith("engine:", oversell.Str("key"), StringComparison.Ordinal);
        Assert.Equal("engine:" + oversell.Long("id"), oversell.Str("key"));
        Assert.Equal(("OVER", "WH1", "oversell-1", 3L), (oversell.Str("sku"), oversell.Str("locationId"), oversell.Str("eventId"), oversell.Long("quantity")));
        Assert.Equal(HubServer.Epoch, oversell.GetProperty("raisedAt").GetDateTimeOffset());
        Assert.Equal(HubServer.Epoch, oversell.GetProperty("recordedAt").GetDateTimeOffset());
        Assert.Equal(["acknowledged"], oversell.GetProperty("nextStatuses").EnumerateArray().Select(s => s.GetString()!).ToArray());
        var drift = items[2];
        Assert.Equal(raised.Key, drift.Str("key"));
        Assert.False(drift.TryGetProperty("id", out var _), "only engine exceptions carry the numeric id of the engine-only list");
        Assert.Equal(("DRIFT-1", "WH1", "web", -4L), (drift.Str("sku"), drift.Str("locationId"), drift.Str("channelId"), drift.Long("quantity")));
        Assert.Equal((10L, 6L, "erp", "run:1"), (drift.GetProperty("drift").Long("expected"), drift.GetProperty("drift").Long("reported"),
            drift.GetProperty("drift").Str("system"), drift.GetProperty("drift").Str("reference")));
        var dead = items[3];
        Assert.Equal(("channel:web:MISSING", "MISSING", "web", 7L), (dead.Str("key"), dead.Str("sku"), dead.Str("channelId"), dead.Long("quantity")));
        Assert.False(dead.TryGetProperty("locationId", out var _));
        Assert.Contains("MISSING", dead.Str("detail"), StringComparison.Ordinal);

        // Age counts from the raised time on the hub's clock.
        await hub.Advance(TimeSpan.FromMinutes(10));
        var aged = (await Items(hub, "?kind=drift")).Single();
        Assert.Equal(600, aged.GetProperty("ageSeconds").GetDouble(), precision: 0);
    }

    [Fact]
    public async Task the_list_filters_by_kind_sku_location_channel_status_and_assignee()
    {
        var (hub, channel) = await StartWithChannel();
        await using var _ = hub;
        await using var __ = channel;
        await hub.Events(HubServer.Event("sold", "OVER", "S1", 2));
        await DeadLetter(hub);
        var workflow = Workflow(hub);
        var atWarehouse = workflow.Raise("drift", "D1", "WH1", null, 2, "WMS count differs.").Key;
        var onChannel = workflow.Raise("drift", "D2", null, "web", -1, "The channel shows one more.").Key;

        Assert.Equal([atWarehouse, onChannel], Keys(await Items(hub, "?kind=drift")));
        Assert.Equal([atWarehouse, onChannel], Keys(await Items(hub, "?type=drift")));
        Assert.Equal(["channel:web:MISSING"], Keys(await Items(hub, "?kind=channel-dead-letter")));
        Assert.Equal([onChannel, "channel:web:MISSING"], Keys(await Items(hub, "?channel=web")));
        Assert.Equal([atWarehouse], Keys(await Items(hub, "?location=WH1")));
        Assert.Equal(["negative-on-hand", "oversell"], (await Items(hub, "?location=S1")).Select(i => i.Str("kind")).ToArray());
        Assert.Equal(["channel:web:MISSING"], Keys(await Items(hub, "?sku=MISSING")));
        Assert.Empty(await Items(hub, "?sku=MISSING&location=WH1"));

        Assert.Equal(HttpStatusCode.OK, (await Patch(hub, atWarehouse, new { status = "acknowledged", assignee = "alice" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Patch(hub, "channel:web:MISSING", new { assignee = "bob" })).StatusCode);

        Assert.Equal([atWarehouse], Keys(await Items(hub, "?status=acknowledged")));
        Assert.Equal(4, (await Items(hub, "?status=open")).Length);
        Assert.Equal(5, (await Items(hub, "?status=open,acknowledged")).Length);
        Assert.Empty(await Items(hub, "?status=resolved"));
        Assert.Equal([atWarehouse], Keys(await Items(hub, "?assignee=alice")));
        Assert.Equal(["channel:web:MISSING"], Keys(await Items(hub, "?assignee=bob&kind=channel-dead-letter")));
        Assert.Empty(await Items(hub, "?assignee=carol"));
    }

    [Fact]
    public async Task paging_walks_every_source_once_and_the_engine_only_cursor_still_works()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var workflow = Workflow(hub);
        await hub.Events(HubServer.Event("sold", "A", "WH1", 1));             // engine 1, 2 at Epoch
        workflow.Raise("drift", "D1", "WH1", null, 1, "first");                // drift at Epoch
        await hub.Advance(TimeSpan.FromSeconds(1));
        await hub.Events(HubServer.Event("sold", "B", "WH1", 1));             // engine 3, 4 at +1 s
        workflow.Raise("drift", "D2", "WH1", null, 1, "second");               // drift at +1 s
        await hub.Advance(TimeSpan.FromSeconds(1));
        workflow.Raise("drift", "D3", "WH1", null, 1, "third");                // drift at +2 s

        var all = Keys(await Items(hub));
        var walked = new List<string>();
        string? after = null;
        do
        {
            var page = await hub.GetJson("/v1/exceptions?limit=2" + (after is null ? "" : "&after=" + after));
            walked.AddRange(Keys(page.GetProperty("items").EnumerateArray()));
            after = page.TryGetProperty("next", out var next) ? next.GetString() : null;
        }
        while (after is not null);

        Assert.Equal(7, all.Length);
        Assert.Equal(all, walked.ToArray());
        Assert.Equal(["engine:1", "engine:2", "drift:1", "engine:3", "engine:4", "drift:2", "drift:3"], all);
        // A cursor of the engine-only list (the last engine id) continues after that exception in the merged order.
        Assert.Equal(["drift:1", "engine:3", "engine:4", "drift:2", "drift:3"], Keys(await Items(hub, "?after=2")));
        Assert.Equal(["engine:4"], Keys(await Items(hub, "?after=2&kind=oversell")));
    }

    [Theory]
    [InlineData("status=done", "status")]
    [InlineData("kind=two%20words", "kind")]
    [InlineData("kind=drift&type=clamp", "kind")]
    [InlineData("location=a%20b", "location")]
    [InlineData("channel=a%2Fb", "channel")]
    [InlineData("after=cNotACursor", "after")]
    [InlineData("limit=1001", "limit")]
    public async Task a_list_query_with_a_bad_filter_is_422(string query, string field)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/exceptions?" + query), field);
    }

    // ------------------------------------------------------------------ status, assignee, audit

    [Fact]
    public async Task status_moves_open_acknowledged_resolved_and_back_to_open_and_every_change_is_in_the_history()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var key = Workflow(hub).Raise("drift", "D1", "WH1", null, 3, "WMS count differs.").Key;

        var acknowledged = await Api.AssertJson(await Patch(hub, key, new { status = "acknowledged", assignee = "alice" }), HttpStatusCode.OK);
        Assert.Equal(("acknowledged", "alice"), (acknowledged.Str("status"), acknowledged.Str("assignee")));
        await hub.Advance(TimeSpan.FromHours(2));
        var resolved = await Api.AssertJson(await Patch(hub, key, new { status = "resolved" }), HttpStatusCode.OK);
        Assert.Equal("resolved", resolved.Str("status"));
        Assert.Equal(HubServer.Epoch.AddHours(2), resolved.GetProperty("resolvedAt").GetDateTimeOffset());
        Assert.Equal(7200, resolved.GetProperty("ageSeconds").GetDouble(), precision: 0);
        var reopened = await Api.AssertJson(await Patch(hub, key, new { status = "open", assignee = (string?)null }), HttpStatusCode.OK);
        Assert.Equal("open", reopened.Str("status"));
        Assert.False(reopened.TryGetProperty("assignee", out var _));
        Assert.False(reopened.TryGetProperty("resolvedAt", out var _));

        var history = (await hub.GetJson("/v1/exceptions/" + key)).GetProperty("history").EnumerateArray().ToArray();
        Assert.Equal(3, history.Length);
        Assert.All(history, h => Assert.Equal(("anonymous", "update"), (h.Str("actor"), h.Str("action"))));
        Assert.Equal(("open", "acknowledged", true, "alice"), (history[0].Str("fromStatus"), history[0].Str("toStatus"),
            history[0].GetProperty("assigneeChanged").GetBoolean(), history[0].Str("toAssignee")));
        Assert.Equal(("acknowledged", "resolved", false), (history[1].Str("fromStatus"), history[1].Str("toStatus"),
            history[1].GetProperty("assigneeChanged").GetBoolean()));
        Assert.Equal(HubServer.Epoch.AddHours(2), history[1].GetProperty("at").GetDateTimeOffset());
        Assert.Equal(("resolved", "open", "alice"), (history[2].Str("fromStatus"), history[2].Str("toStatus"), history[2].Str("fromAssignee")));
        Assert.False(history[2].TryGetProperty("toAssignee", out var _));
    }

    [Theory]
    [InlineData("", "resolved")]
    [InlineData("acknowledged", "open")]
    [InlineData("acknowledged,resolved", "acknowledged")]
    public async Task an_illegal_status_change_is_409_and_changes_nothing(string path, string illegal)
    {
        var before = path.Split(',', StringSplitOptions.RemoveEmptyEntries);
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));
        foreach (var status in before)
        {
            Assert.Equal(HttpStatusCode.OK, (await Patch(hub, "engine:2", new { status })).StatusCode);
        }

        var problem = await Api.AssertProblem(await Patch(hub, "engine:2", new { status = illegal }), HttpStatusCode.Conflict, "illegal-transition");

        var current = before.Length == 0 ? "open" : before[^1];
        Assert.Equal((current, illegal), (problem.Str("exceptionStatus"), problem.Str("requestedStatus")));
        var item = await hub.GetJson("/v1/exceptions/engine:2");
        Assert.Equal(current, item.Str("status"));
        Assert.Equal(before.Length, item.GetProperty("history").GetArrayLength());
    }

    [Fact]
    public async Task the_same_status_again_changes_nothing_and_adds_no_history()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));
        await Patch(hub, "engine:1", new { status = "acknowledged" });

        var again = await Api.AssertJson(await Patch(hub, "engine:1", new { status = "acknowledged" }), HttpStatusCode.OK);

        Assert.Equal("acknowledged", again.Str("status"));
        Assert.Equal(1, again.GetProperty("history").GetArrayLength());
    }

    [Fact]
    public async Task an_unknown_key_is_404_and_a_bad_body_is_422()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));

        foreach (var key in new[] { "engine:99", "drift:1", "erp:1", "channel:web:NOPE", "nonsense", "engine:x" })
        {
            await Api.AssertProblem(await hub.Client.GetAsync("/v1/exceptions/" + key), HttpStatusCode.NotFound, "unknown-exception");
            await Api.AssertProblem(await Patch(hub, key, new { status = "acknowledged" }), HttpStatusCode.NotFound, "unknown-exception");
            await Api.AssertProblem(await Note(hub, key, new { author = "a", text = "b" }), HttpStatusCode.NotFound, "unknown-exception");
        }
        await Api.AssertFieldError(await Patch(hub, "engine:1", new { status = "done" }), "status");
        await Api.AssertFieldError(await Patch(hub, "engine:1", new { }), "status");
        await Api.AssertFieldError(await Patch(hub, "engine:1", new { assignee = new string('a', 129) }), "assignee");
        await Api.AssertFieldError(await Patch(hub, "engine:1", new { status = 3 }), "status", HttpStatusCode.BadRequest);
        Assert.Equal(0, (await hub.GetJson("/v1/exceptions/engine:1")).GetProperty("history").GetArrayLength());
    }

    [Fact]
    public async Task with_api_keys_the_audit_names_the_key_and_the_workflow_needs_admin()
    {
        await using var hub = await HubServer.Start(
            "--Truestock:ApiKeys:0:Name=ops-alice", "--Truestock:ApiKeys:0:Key=admin-secret", "--Truestock:ApiKeys:0:Scopes:0=admin",
            "--Truestock:ApiKeys:1:Name=reader", "--Truestock:ApiKeys:1:Key=read-secret", "--Truestock:ApiKeys:1:Scopes:0=availability:read");
        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "admin-secret");
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));

        Assert.Equal(HttpStatusCode.OK, (await Patch(hub, "engine:1", new { status = "acknowledged" })).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Note(hub, "engine:1", new { author = "Alice", text = "Looking." })).StatusCode);

        var history = (await hub.GetJson("/v1/exceptions/engine:1")).GetProperty("history").EnumerateArray().ToArray();
        Assert.Equal(["ops-alice", "ops-alice"], history.Select(h => h.Str("actor")).ToArray());
        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "read-secret");
        Assert.Equal(HttpStatusCode.Forbidden, (await hub.Client.GetAsync("/v1/exceptions/engine:1")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Patch(hub, "engine:1", new { status = "resolved" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Note(hub, "engine:1", new { author = "x", text = "y" })).StatusCode);
        hub.Client.DefaultRequestHeaders.Authorization = null;
        Assert.Equal(HttpStatusCode.Unauthorized, (await hub.Client.GetAsync("/v1/exceptions")).StatusCode);
    }

    // ------------------------------------------------------------------ notes

    [Fact]
    public async Task notes_are_kept_in_order_with_their_author_and_shown_on_the_list_as_a_count_and_the_last_one()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));

        var first = await Api.AssertJson(await Note(hub, "engine:2", new { author = "Alice", text = "Store says the till was offline." }), HttpStatusCode.Created);
        await hub.Advance(TimeSpan.FromMinutes(5));
        await Api.AssertJson(await Note(hub, "engine:2", new { author = "Bob", text = "Count requested.\nWill check tomorrow." }), HttpStatusCode.Created);

        Assert.Equal("open", first.Str("status"));
        var notes = (await hub.GetJson("/v1/exceptions/engine:2")).GetProperty("notes").EnumerateArray().ToArray();
        Assert.Equal([("Alice", "Store says the till was offline."), ("Bob", "Count requested.\nWill check tomorrow.")],
            notes.Select(n => (n.Str("author"), n.Str("text"))).ToArray());
        Assert.Equal(HubServer.Epoch.AddMinutes(5), notes[1].GetProperty("at").GetDateTimeOffset());
        Assert.Equal("anonymous", notes[1].Str("actor"));
        var listed = (await Items(hub, "?kind=oversell")).Single();
        Assert.Equal((2L, "Bob"), (listed.Long("noteCount"), listed.GetProperty("lastNote").Str("author")));
        Assert.False(listed.TryGetProperty("notes", out var _));
        Assert.Equal(0, (await Items(hub, "?kind=negative-on-hand")).Single().Long("noteCount"));
    }

    [Theory]
    [InlineData("{\"text\":\"x\"}", "author")]
    [InlineData("{\"author\":\"a\"}", "text")]
    [InlineData("{\"author\":\"a\",\"text\":\"   \"}", "text")]
    [InlineData("{\"author\":\"a\",\"text\":\"bell\\u0007\"}", "text")]
    public async Task a_note_without_author_or_text_or_with_bad_characters_is_422(string body, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));

        await Api.AssertFieldError(await hub.PostRaw("/v1/exceptions/engine:1/notes", body), field);
    }

    [Fact]
    public async Task note_lengths_are_bounded()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1));

        await Api.AssertFieldError(await Note(hub, "engine:1", new { author = new string('a', 129), text = "x" }), "author");
        await Api.AssertFieldError(await Note(hub, "engine:1", new { author = "a", text = new string('x', 2001) }), "text");
        Assert.Equal(HttpStatusCode.Created, (await Note(hub, "engine:1", new { author = new string('a', 128), text = new string('x', 2000) })).StatusCode);
        await Api.AssertProblem(await hub.PostRaw("/v1/exceptions/engine:1/notes", "{\"author\":\"a\",\"text\":\"" + new string('x', 20_000) + "\"}"),
            HttpStatusCode.RequestEntityTooLarge);
    }

    // ------------------------------------------------------------------ dead letters

    [Fact]
    public async Task a_channel_dead_letter_is_acknowledged_by_hand_but_resolved_only_by_replay_and_then_cannot_be_reopened()
    {
        var (hub, channel) = await StartWithChannel();
        await using var _ = hub;
        await using var __ = channel;
        await DeadLetter(hub);
        const string key = "channel:web:MISSING";

        await Api.AssertProblem(await Patch(hub, key, new { status = "resolved" }), HttpStatusCode.Conflict, "dead-letter-resolves-by-replay");
        await Api.AssertJson(await Patch(hub, key, new { status = "acknowledged", assignee = "alice" }), HttpStatusCode.OK);
        await Api.AssertJson(await Note(hub, key, new { author = "alice", text = "Listing created in the shop." }), HttpStatusCode.Created);
        Assert.Equal("acknowledged", (await hub.GetJson("/v1/exceptions/" + key)).Str("status"));

        channel.AddListing("MISSING");
        await Api.AssertJson(await hub.PostEmpty("/v1/channels/web/dead-letters/MISSING/replay"), HttpStatusCode.OK);

        var item = await hub.GetJson("/v1/exceptions/" + key);
        Assert.Equal(("resolved", "alice"), (item.Str("status"), item.Str("assignee")));
        Assert.Empty(item.GetProperty("nextStatuses").EnumerateArray());
        Assert.Equal(1, item.GetProperty("notes").GetArrayLength());
        Assert.Equal([key], Keys(await Items(hub, "?status=resolved")));
        Assert.Empty(await Items(hub, "?status=open,acknowledged&kind=channel-dead-letter"));
        await Api.AssertProblem(await Patch(hub, key, new { status = "open" }), HttpStatusCode.Conflict, "dead-letter-resolved");
        await Eventually(async () => channel.QuantityOf("MISSING") == 7, "the replayed publication reaches the channel");
    }

    [Fact]
    public async Task a_dead_letter_nobody_touched_leaves_the_list_when_discarded_and_one_that_dies_again_starts_open()
    {
        var (hub, channel) = await StartWithChannel();
        await using var _ = hub;
        await using var __ = channel;
        await DeadLetter(hub, "X1");
        await DeadLetter(hub, "X2");
        await Eventually(async () => (await hub.GetJson("/v1/channels/web/sync")).Long("deadLetters") == 2, "both are dead letters");
        await Patch(hub, "channel:web:X2", new { status = "acknowledged" });

        await Api.AssertJson(await hub.Client.DeleteAsync("/v1/channels/web/dead-letters"), HttpStatusCode.OK);

        Assert.Equal([("channel:web:X2", "resolved")], (await Items(hub, "?kind=channel-dead-letter")).Select(i => (i.Str("key"), i.Str("status"))).ToArray());
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/exceptions/channel:web:X1"), HttpStatusCode.NotFound, "unknown-exception");

        // X2 changes and fails again later: a new incident, open, with none of the earlier one's state.
        await hub.Advance(TimeSpan.FromMinutes(1));
        await hub.Receive("X2", "WH1", 1);
        await Eventually(async () => (await hub.GetJson("/v1/channels/web/sync")).Long("deadLetters") == 1, "X2 is dead-lettered again");
        var again = await hub.GetJson("/v1/exceptions/channel:web:X2");
        Assert.Equal("open", again.Str("status"));
        Assert.Equal(HubServer.Epoch.AddMinutes(1), again.GetProperty("raisedAt").GetDateTimeOffset());
        Assert.Empty(again.GetProperty("notes").EnumerateArray());
        Assert.Equal(1, again.GetProperty("history").GetArrayLength());
        await Api.AssertJson(await Patch(hub, "channel:web:X2", new { status = "acknowledged" }), HttpStatusCode.OK);
    }

    [Fact]
    public async Task an_erp_dead_letter_is_listed_and_resolved_by_replay()
    {
        var erp = await GenericErpEmulator.StartAsync();
        await using var __ = erp;
        await using var hub = await HubServer.Start(
            "--Truestock:Erp:Kind=rest", $"--Truestock:Erp:Url={erp.Url}", "--Truestock:Credentials:erp:apiKey=emulator-erp-key",
            "--Truestock:Erp:RequestsPerSecondMax=1000", "--Truestock:Erp:PollMilliseconds=20", "--Truestock:Erp:TimeoutSeconds=2");
        await hub.Setup();
        erp.Faults.BreakSku("BAD");
        await hub.Events(HubServer.Event("received", "BAD", "WH1", 5, eventId: "bad-1"));
        await Eventually(async () => (await hub.GetJson("/v1/erp/status")).Long("deadLetters") == 1, "the movement is an ERP dead letter");

        var item = (await Items(hub, "?kind=erp-dead-letter")).Single();
        var key = item.Str("key");
        Assert.Equal("erp:" + item.Long("ledgerId"), key);
        Assert.Equal(("BAD", "WH1", "bad-1", "received", 5L, "open"), (item.Str("sku"), item.Str("locationId"), item.Str("eventId"),
            item.Str("movementType"), item.Long("quantity"), item.Str("status")));
        Assert.Equal([key], Keys(await Items(hub, "?location=WH1&kind=erp-dead-letter")));
        Assert.Empty(await Items(hub, "?channel=web&kind=erp-dead-letter"));
        await Api.AssertProblem(await Patch(hub, key, new { status = "resolved" }), HttpStatusCode.Conflict, "dead-letter-resolves-by-replay");
        await Api.AssertJson(await Patch(hub, key, new { status = "acknowledged" }), HttpStatusCode.OK);

        erp.Faults.Heal("BAD");
        await Api.AssertJson(await hub.PostEmpty($"/v1/erp/dead-letters/{item.Long("ledgerId")}/replay"), HttpStatusCode.OK);
        await Eventually(async () => (await hub.GetJson("/v1/exceptions/" + key)).TryGetProperty("resolvedAt", out _), "the replay is posted");

        Assert.Equal("resolved", (await hub.GetJson("/v1/exceptions/" + key)).Str("status"));
    }

    // ------------------------------------------------------------------ the Raise API

    [Fact]
    public async Task raise_with_a_dedupe_key_updates_the_unresolved_drift_and_raises_a_new_one_after_resolution()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var workflow = Workflow(hub);

        var first = workflow.Raise("drift", "D1", "WH1", null, -2, "ERP shows 2 fewer.", new DriftFigures(System: "erp", DedupeKey: "erp:D1:WH1"));
        await hub.Advance(TimeSpan.FromHours(1));
        var second = workflow.Raise("drift", "D1", "WH1", null, -3, "ERP shows 3 fewer.", new DriftFigures(System: "erp", DedupeKey: "erp:D1:WH1"));

        Assert.Equal((first.Key, false, true), (second.Key, first.Repeated, second.Repeated));
        var item = await hub.GetJson("/v1/exceptions/" + first.Key);
        Assert.Equal((-3L, "ERP shows 3 fewer.", 2L), (item.Long("quantity"), item.Str("detail"), item.GetProperty("drift").Long("occurrences")));
        Assert.Equal(HubServer.Epoch, item.GetProperty("raisedAt").GetDateTimeOffset());
        Assert.Equal(HubServer.Epoch.AddHours(1), item.GetProperty("drift").GetProperty("lastSeenAt").GetDateTimeOffset());

        var resolved = workflow.ResolveBySystem(first.Key, "reconciliation", "The next run found no drift.");
        Assert.Equal(("resolved", WorkflowRejection.None), (resolved.Item!.Status, resolved.Rejection));
        var third = workflow.Raise("drift", "D1", "WH1", null, -1, "Again.", new DriftFigures(DedupeKey: "erp:D1:WH1"));
        Assert.NotEqual(first.Key, third.Key);
        Assert.False(third.Repeated);
        var history = (await hub.GetJson("/v1/exceptions/" + first.Key)).GetProperty("history").EnumerateArray().ToArray();
        Assert.Equal([("reconciliation", "update"), ("reconciliation", "note")], history.Select(h => (h.Str("actor"), h.Str("action"))).ToArray());
    }

    [Fact]
    public async Task raise_refuses_what_a_caller_must_not_send()
    {
        await using var hub = await HubServer.Start();
        var workflow = Workflow(hub);

        Assert.Throws<ArgumentException>(() => workflow.Raise("oversell", "A", null, null, 1, "x"));
        Assert.Throws<ArgumentException>(() => workflow.Raise("channel-dead-letter", "A", null, null, 1, "x"));
        Assert.Throws<ArgumentException>(() => workflow.Raise("two words", "A", null, null, 1, "x"));
        Assert.Throws<ArgumentException>(() => workflow.Raise("drift", "", null, null, 1, "x"));
        Assert.Throws<ArgumentException>(() => workflow.Raise("drift", "A", "bad location", null, 1, "x"));
        Assert.Throws<ArgumentException>(() => workflow.Raise("drift", "A", null, null, 1, ""));
        Assert.Throws<ArgumentException>(() => workflow.Raise("drift", "A", null, null, 1, "x", new DriftFigures(System: "two words")));
        Assert.Empty((await hub.GetJson("/v1/exceptions")).GetProperty("items").EnumerateArray());
    }
}
