using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>Shared steps of the reconciliation scenarios: upload a snapshot, run it, read what it found.</summary>
internal static class Recon
{
    public static async Task<JsonElement> Upload(HttpClient client, string system, string systemId, DateTimeOffset asOf, HttpContent body,
        string kind = "partial")
    {
        var url = $"/v1/reconciliation/snapshots?system={system}&systemId={systemId}&asOf={Uri.EscapeDataString(asOf.ToString("O"))}&kind={kind}";
        return await Api.AssertJson(await client.PostAsync(url, body), HttpStatusCode.Created);
    }

    public static Task<JsonElement> Upload(HubServer hub, string system, string systemId, DateTimeOffset asOf, string csv, string kind = "partial") =>
        Upload(hub.Client, system, systemId, asOf, Csv(csv), kind);

    public static StringContent Csv(string csv) => new(csv, Encoding.UTF8, "text/csv");

    public static async Task<JsonElement> Run(HttpClient client, long snapshotId) =>
        await Api.AssertJson(await client.PostAsJsonAsync("/v1/reconciliation/runs", new { snapshotId }), HttpStatusCode.Created);

    public static async Task<JsonElement> UploadAndRun(HubServer hub, string system, string systemId, DateTimeOffset asOf, string csv, string kind = "partial")
    {
        var snapshot = await Upload(hub, system, systemId, asOf, csv, kind);
        Assert.Equal(0, snapshot.Long("errorsTotal"));
        var run = await Run(hub.Client, snapshot.Long("snapshotId"));
        Assert.Equal("finished", run.Str("state"));
        return run;
    }

    public static async Task<JsonElement[]> Variances(HubServer hub, long runId) =>
        (await hub.GetJson($"/v1/reconciliation/runs/{runId}/variances?limit=1000")).GetProperty("items").EnumerateArray().ToArray();

    /// <summary>Polls until the condition holds (real time: publishers and posters run beside the test).</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"Timed out waiting until {what}.");
            await Task.Delay(20);
        }
    }

    private static Task<HttpResponseMessage> PostAsJsonAsync(this HttpClient client, string path, object body) =>
        System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(client, path, body);
}

/// <summary>
/// Reconciliation end to end with seeded scenarios whose answers are known: each asserts exactly the variances, their
/// causes and their repairs (docs/reconciliation.md).
/// </summary>
public sealed class ReconciliationTests
{
    private static readonly DateTimeOffset At0800 = HubServer.Epoch.AddHours(-1);

    [Fact]
    public async Task a_missed_webhook_is_a_physical_variance_whose_proposed_count_changes_the_ledger_exactly_once()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");
        // Recorded at 09:00 (the hub's clock), before the snapshot.
        await hub.Events(
            HubServer.Event("received", "A", "WH1", 10, At0800),
            HubServer.Event("received", "C", "WH1", 5, At0800));
        await hub.Advance(TimeSpan.FromHours(1));
        // In flight at the snapshot's time: it happened after asOf, so it must not show up as drift.
        await hub.Events(HubServer.Event("sold", "A", "WH1", 1, HubServer.Epoch.AddMinutes(45)));
        var asOf = HubServer.Epoch.AddMinutes(30);

        // The ERP booked a sale of 2 A at 09:15 whose webhook the hub never got, and counts one C more than the hub.
        var run = await Recon.UploadAndRun(hub, "erp", "main", asOf, "sku,locationId,onHand,unitCost\nA,WH1,8,2.50\nB,WH1,0,\nC,WH1,6,\n");

        Assert.Equal((3L, 1L, 2L, 2L, 0L, 3L), (run.Long("compared"), run.Long("matched"), run.Long("variances"), run.Long("overThreshold"),
            run.Long("unknown"), run.Long("unitsAbsolute")));
        var variances = await Recon.Variances(hub, run.Long("runId"));
        Assert.Equal(2, variances.Length);
        var a = variances[0];
        Assert.Equal(("A", "WH1", 10L, 8L, -2L), (a.Str("sku"), a.Str("locationId"), a.Long("expected"), a.Long("reported"), a.Long("difference")));
        Assert.Equal(("unexplained", "proposed", true), (a.Str("cause"), a.Str("repair"), a.GetProperty("overThreshold").GetBoolean()));
        Assert.Equal(-5.00m, a.GetProperty("value").GetDecimal());
        // Over the threshold: an exception for a person, through the exceptions workflow.
        Assert.StartsWith("drift:", a.Str("exceptionId"), StringComparison.Ordinal);
        var c = variances[1];
        Assert.Equal(("C", 5L, 6L, 1L, "unexplained", "proposed"), (c.Str("sku"), c.Long("expected"), c.Long("reported"), c.Long("difference"),
            c.Str("cause"), c.Str("repair")));

        var proposals = (await hub.GetJson("/v1/reconciliation/proposals?status=proposed")).GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(2, proposals.Length);
        var p = proposals[0];
        Assert.Equal(a.Long("proposalId"), p.Long("proposalId"));
        Assert.Equal(("counted", "A", "WH1", 8L, "proposed"), (p.Str("type"), p.Str("sku"), p.Str("locationId"), p.Long("quantity"), p.Str("status")));
        Assert.Equal(asOf, p.GetProperty("occurredAt").GetDateTimeOffset());
        // Nothing is applied silently: the hub still has what it had.
        Assert.Equal(9, await hub.OnHand("A", "WH1"));

        var approved = await Api.AssertJson(await hub.Post($"/v1/reconciliation/proposals/{p.Long("proposalId")}/approve",
            new { by = "ops-anna", reason = "ERP sale 4711 never reached the hub" }), HttpStatusCode.OK);
        Assert.Equal(("approved", "applied", "ops-anna"), (approved.Str("status"), approved.Str("eventStatus"), approved.Str("decidedBy")));
        Assert.Equal("ERP sale 4711 never reached the hub", approved.Str("reason"));
        // Counted 8 as of 09:30, and the 09:45 sale added back: 7.
        Assert.Equal(7, await hub.OnHand("A", "WH1"));
        var ledger = await HubServer.WholeLedger(hub.Client, "A", "WH1");
        Assert.Single(ledger, e => e.Str("eventId") == p.Str("eventId"));

        // Approving again changes nothing.
        var again = await Api.AssertJson(await hub.PostEmpty($"/v1/reconciliation/proposals/{p.Long("proposalId")}/approve"), HttpStatusCode.OK);
        Assert.Equal(("approved", "ops-anna"), (again.Str("status"), again.Str("decidedBy")));
        Assert.Equal(7, await hub.OnHand("A", "WH1"));
        Assert.Equal(ledger.Count, (await HubServer.WholeLedger(hub.Client, "A", "WH1")).Count);
        await Api.AssertProblem(await hub.Post($"/v1/reconciliation/proposals/{p.Long("proposalId")}/reject", new { reason = "too late" }),
            HttpStatusCode.Conflict, "proposal-decided");

        // The other proposal is rejected with a reason (required) and never applied.
        var other = proposals[1].Long("proposalId");
        await Api.AssertFieldError(await hub.Post($"/v1/reconciliation/proposals/{other}/reject", new { }), "reason");
        var rejected = await Api.AssertJson(await hub.Post($"/v1/reconciliation/proposals/{other}/reject", new { reason = "recount pending" }),
            HttpStatusCode.OK);
        Assert.Equal(("rejected", "recount pending", "anonymous"), (rejected.Str("status"), rejected.Str("reason"), rejected.Str("decidedBy")));
        Assert.True(rejected.TryGetProperty("decidedAt", out _));
        await Api.AssertProblem(await hub.PostEmpty($"/v1/reconciliation/proposals/{other}/approve"), HttpStatusCode.Conflict, "proposal-decided");
        Assert.Equal(5, await hub.OnHand("C", "WH1"));
        Assert.Empty((await hub.GetJson("/v1/reconciliation/proposals?status=proposed")).GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task variances_under_the_threshold_are_recorded_only()
    {
        await using var hub = await HubServer.Start("--Truestock:Reconciliation:Thresholds:wms:Units=2", "--Truestock:Reconciliation:Thresholds:wms:Percent=10");
        await hub.Setup("web");
        await hub.Events(HubServer.Event("received", "A", "WH1", 100, At0800), HubServer.Event("received", "B", "WH1", 10, At0800));
        await hub.Advance(TimeSpan.FromHours(1));

        // A: 3 units but 3 % (under); B: 3 units and 30 % (over both limits).
        var run = await Recon.UploadAndRun(hub, "wms", "wh", HubServer.Epoch.AddMinutes(30), "sku,locationId,onHand\nA,WH1,97\nB,WH1,7\n");

        Assert.Equal((2L, 1L), (run.Long("variances"), run.Long("overThreshold")));
        var v = await Recon.Variances(hub, run.Long("runId"));
        Assert.Equal(("A", false, "none"), (v[0].Str("sku"), v[0].GetProperty("overThreshold").GetBoolean(), v[0].Str("repair")));
        Assert.False(v[0].TryGetProperty("proposalId", out _));
        Assert.False(v[0].TryGetProperty("exceptionId", out _));
        Assert.StartsWith("drift:", v[1].Str("exceptionId"), StringComparison.Ordinal);
        Assert.Equal(("B", true, "proposed"), (v[1].Str("sku"), v[1].GetProperty("overThreshold").GetBoolean(), v[1].Str("repair")));
        var over = (await hub.GetJson($"/v1/reconciliation/runs/{run.Long("runId")}/variances?overThreshold=true")).GetProperty("items");
        Assert.Equal(["B"], over.EnumerateArray().Select(x => x.Str("sku")).ToArray());
    }

    [Fact]
    public async Task a_movement_the_erp_has_not_booked_yet_is_the_cause_and_nothing_is_proposed()
    {
        // The ERP is down (nothing listens on port 9), so every movement stays pending in the ERP outbox.
        await using var hub = await HubServer.Start("--Truestock:Erp:Kind=rest", "--Truestock:Erp:Url=http://127.0.0.1:9/api/stock-movements",
            "--Truestock:Credentials:erp:apiKey=k", "--Truestock:Erp:AttemptsMax=100", "--Truestock:Erp:TimeoutSeconds=1",
            "--Truestock:Erp:PollMilliseconds=20");
        await hub.Setup("web");
        await hub.Events(HubServer.Event("received", "A", "WH1", 10, At0800), HubServer.Event("sold", "A", "WH1", 3, HubServer.Epoch.AddMinutes(-5)));
        await hub.Advance(TimeSpan.FromHours(1));
        await Recon.Eventually(async () => (await hub.GetJson("/v1/erp/status")).Long("backlog") == 2, "both movements are in the ERP backlog");

        // The ERP booked neither movement; as of 09:30 the hub has 7.
        var run = await Recon.UploadAndRun(hub, "erp", "main", HubServer.Epoch.AddMinutes(30), "sku,locationId,onHand\nA,WH1,0\n");

        var v = Assert.Single(await Recon.Variances(hub, run.Long("runId")));
        Assert.Equal((7L, 0L, -7L), (v.Long("expected"), v.Long("reported"), v.Long("difference")));
        Assert.Equal(("erp-posting-pending", "none"), (v.Str("cause"), v.Str("repair")));
        Assert.Contains("explains the whole difference", v.Str("causeDetail"), StringComparison.Ordinal);
        Assert.False(v.TryGetProperty("proposalId", out _));
        // The difference is settling by itself: no exception for a person.
        Assert.False(v.TryGetProperty("exceptionId", out _));
        Assert.Empty((await hub.GetJson("/v1/reconciliation/proposals")).GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task a_channel_left_stale_by_a_dead_letter_is_republished()
    {
        const string secret = "recon-webhook-secret";
        var channel = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = secret, RequireListings = true });
        await using var channelLease = channel;
        await using var hub = await HubServer.Start($"--Truestock:Credentials:web:secret={secret}", "--Truestock:ChannelPollMilliseconds=20");
        await hub.Setup("web", new { connector = new { kind = "webhook", url = channel.Url.ToString(), requestsPerSecondMax = 1000, timeoutSeconds = 2 } });
        channel.AddListing("GOOD");
        await hub.Receive("GOOD", "WH1", 5);
        await hub.Receive("MISSING", "WH1", 7);
        await Recon.Eventually(async () => (await hub.GetJson("/v1/channels/web/sync")).Long("deadLetters") == 1, "the unknown listing is dead-lettered");
        // The listing is created on the channel's side afterwards: it shows 0 while the hub offers 7.
        channel.AddListing("MISSING");

        var run = await Recon.UploadAndRun(hub, "channel", "web", hub.Time.GetUtcNow(), "sku,available\nGOOD,5\nMISSING,0\n");

        Assert.Equal((2L, 1L, 1L), (run.Long("compared"), run.Long("matched"), run.Long("variances")));
        var v = Assert.Single(await Recon.Variances(hub, run.Long("runId")));
        Assert.Equal(("MISSING", "web", 7L, 0L, -7L), (v.Str("sku"), v.Str("channelId"), v.Long("expected"), v.Long("reported"), v.Long("difference")));
        Assert.Equal(("publication-dead-lettered", "republished"), (v.Str("cause"), v.Str("repair")));
        Assert.False(v.TryGetProperty("locationId", out _));

        await Recon.Eventually(() => Task.FromResult(channel.QuantityOf("MISSING") == 7), "the channel shows the hub's ATS again");
        await Recon.Eventually(async () => (await hub.GetJson("/v1/channels/web/sync")) is var s && s.Long("deadLetters") == 0 && s.Long("pending") == 0,
            "the outbox is settled");

        // The next snapshot of the channel agrees with the hub.
        var after = await Recon.UploadAndRun(hub, "channel", "web", hub.Time.GetUtcNow(), "sku,available\nGOOD,5\nMISSING,7\n");
        Assert.Equal(0, after.Long("variances"));
    }

    [Fact]
    public async Task a_late_out_of_order_store_upload_across_the_snapshot_time_is_no_drift()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");
        await hub.Events(HubServer.Event("received", "A", "S1", 10, At0800.AddHours(-1)));
        await hub.Advance(TimeSpan.FromHours(3));
        // The store was offline and uploads at 12:00, newest first: a sale at 11:00 (after asOf) and one at 09:30 (before it).
        await hub.Events(
            HubServer.Event("sold", "A", "S1", 1, HubServer.Epoch.AddHours(2), source: "pos"),
            HubServer.Event("sold", "A", "S1", 2, HubServer.Epoch.AddMinutes(30), source: "pos"));
        Assert.Equal(7, await hub.OnHand("A", "S1"));

        // The WMS saw the 09:30 sale when it took its 10:00 snapshot, but not the 11:00 one.
        var run = await Recon.UploadAndRun(hub, "wms", "stores", HubServer.Epoch.AddHours(1), "sku,locationId,onHand\nA,S1,8\n");

        Assert.Equal((1L, 1L, 0L), (run.Long("compared"), run.Long("matched"), run.Long("variances")));
        Assert.Empty(await Recon.Variances(hub, run.Long("runId")));

        // Had the WMS not seen the 09:30 sale yet, the cause is the late upload, and the hub is not asked to change.
        var late = await Recon.UploadAndRun(hub, "wms", "stores", HubServer.Epoch.AddHours(1).AddMinutes(1), "sku,locationId,onHand\nA,S1,10\n");
        var v = Assert.Single(await Recon.Variances(hub, late.Long("runId")));
        Assert.Equal((8L, 10L, "late-movement", "none"), (v.Long("expected"), v.Long("reported"), v.Str("cause"), v.Str("repair")));
    }

    [Fact]
    public async Task a_full_snapshot_reports_unmentioned_positions_as_zero_and_a_repeated_movement_is_a_probable_duplicate()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");
        await hub.Events(
            HubServer.Event("received", "A", "WH1", 4, At0800),
            // The same receipt sent twice under two ids.
            HubServer.Event("received", "D", "WH1", 6, At0800, eventId: "wms-rcv-1"),
            HubServer.Event("received", "D", "WH1", 6, At0800, eventId: "wms-rcv-1-retry"),
            HubServer.Event("received", "E", "S1", 3, At0800));
        await hub.Advance(TimeSpan.FromHours(1));

        var run = await Recon.UploadAndRun(hub, "wms", "wh", HubServer.Epoch.AddMinutes(30), "sku,locationId,onHand\nD,WH1,6\n", kind: "full");

        // A at WH1 is not in the full snapshot: reported 0. E is at S1, which the snapshot does not cover.
        var v = await Recon.Variances(hub, run.Long("runId"));
        Assert.Equal(2, v.Length);
        var d = v.Single(x => x.Str("sku") == "D");
        Assert.Equal((12L, 6L, "probable-duplicate"), (d.Long("expected"), d.Long("reported"), d.Str("cause")));
        Assert.Contains("wms-rcv-1-retry", d.Str("causeDetail"), StringComparison.Ordinal);
        var a = v.Single(x => x.Str("sku") == "A");
        Assert.Equal((4L, 0L, "unexplained"), (a.Long("expected"), a.Long("reported"), a.Str("cause")));
    }

    [Fact]
    public async Task uploads_are_validated_row_by_row_and_a_bad_header_stores_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");

        var report = await Recon.Upload(hub, "erp", "main", HubServer.Epoch,
            "sku,locationId,onHand\nA,WH1,3\nB,WH 1,2\nC,WH1,-1\nA,WH1,4\n\"D,WH1,1\n");

        Assert.Equal((5L, 1L, 4L, 4L), (report.Long("rows"), report.Long("stored"), report.Long("invalid"), report.Long("errorsTotal")));
        var errors = report.GetProperty("errors").EnumerateArray().Select(e => (e.Long("line"), e.GetProperty("type").GetString()!.Split('/')[^1])).ToArray();
        Assert.Equal([(3L, "validation-failed"), (4L, "validation-failed"), (5L, "duplicate-row"), (6L, "csv-syntax")], errors.OrderBy(e => e.Item1).ToArray());

        await Api.AssertProblem(await hub.Client.PostAsync("/v1/reconciliation/snapshots?system=erp&systemId=main&asOf=2026-11-23T09:00:00Z",
            Recon.Csv("sku,location,onHand\nA,WH1,1\n")), HttpStatusCode.UnprocessableEntity, "invalid-csv-header");
        await Api.AssertFieldError(await hub.Client.PostAsync("/v1/reconciliation/snapshots?system=pos&systemId=main&asOf=2026-11-23T09:00",
            Recon.Csv("sku,locationId,onHand\n")), "system");
        await Api.AssertProblem(await hub.Client.PostAsync("/v1/reconciliation/snapshots?system=channel&systemId=web&asOf=2026-11-23T09:00:00Z",
            new StringContent("{}", Encoding.UTF8, "application/json")), HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        await Api.AssertProblem(await hub.Post("/v1/reconciliation/runs", new { snapshotId = 999 }), HttpStatusCode.UnprocessableEntity, "unknown-snapshot");
        Assert.Equal(1, (await hub.GetJson($"/v1/reconciliation/snapshots/{report.Long("snapshotId")}")).Long("rows"));
        await Api.AssertProblem(await hub.Client.GetAsync($"/v1/reconciliation/snapshots/{report.Long("snapshotId") + 1}"), HttpStatusCode.NotFound,
            "unknown-snapshot");
    }

    [Fact]
    public async Task a_schedule_runs_the_latest_snapshot_of_its_system_once()
    {
        await using var hub = await HubServer.Start("--Truestock:Reconciliation:Schedules:nightly:System=erp",
            "--Truestock:Reconciliation:Schedules:nightly:SystemId=main", "--Truestock:Reconciliation:Schedules:nightly:IntervalMinutes=60",
            "--Truestock:Reconciliation:SchedulerPollSeconds=1");
        await hub.Setup("web");
        await hub.Events(HubServer.Event("received", "A", "WH1", 5, At0800));
        var snapshot = await Recon.Upload(hub, "erp", "main", HubServer.Epoch, "sku,locationId,onHand\nA,WH1,4\n");

        for (var i = 0; i < 3; i++)
        {
            await hub.Advance(TimeSpan.FromMinutes(61));
            await Task.Delay(50);
        }
        await Recon.Eventually(async () => (await hub.GetJson("/v1/reconciliation/runs")).GetProperty("items").GetArrayLength() > 0, "the schedule ran");
        await hub.Advance(TimeSpan.FromMinutes(61));

        var runs = (await hub.GetJson("/v1/reconciliation/runs")).GetProperty("items").EnumerateArray().ToArray();
        var run = Assert.Single(runs);
        Assert.Equal(("schedule:nightly", snapshot.Long("snapshotId"), 1L), (run.Str("origin"), run.Long("snapshotId"), run.Long("variances")));
    }
}

/// <summary>A million-row snapshot streams through the upload and the run in bounded memory.</summary>
[Collection(Disruptive.Name)]
public sealed class ReconciliationLargeSnapshotTests
{
    private const int Rows = 1_000_000;

    [Fact]
    public async Task a_million_row_snapshot_is_stored_and_compared_in_bounded_memory()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");
        await hub.Events(HubServer.Event("received", "SKU-0000001", "WH1", 5), HubServer.Event("received", "SKU-0000002", "WH1", 3));
        await hub.Advance(TimeSpan.FromMinutes(10));
        using var client = new HttpClient { BaseAddress = hub.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                // A full collection per sample measures what is held, not garbage waiting for the next collection.
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true));
                await Task.Delay(200);
            }
        });

        var content = new StreamContent(new GeneratedSnapshot(Rows));
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv");
        var report = await Recon.Upload(client, "wms", "dc", HubServer.Epoch.AddMinutes(5), content);
        var run = await Recon.Run(client, report.Long("snapshotId"));

        await sampling.CancelAsync();
        await sampler;
        Assert.Equal((Rows, Rows, 0L), (report.Long("rows"), report.Long("stored"), report.Long("errorsTotal")));
        Assert.Equal(("finished", (long)Rows, Rows - 1L, 1L), (run.Str("state"), run.Long("compared"), run.Long("matched"), run.Long("variances")));
        var v = Assert.Single(await Recon.Variances(hub, run.Long("runId")));
        Assert.Equal(("SKU-0000002", 3L, 4L), (v.Str("sku"), v.Long("expected"), v.Long("reported")));
        // Holding the rows would take well over 150 MB of managed memory (two strings and a row per line); streaming takes a few.
        var growthMb = (peak - baseline) / (1024.0 * 1024.0);
        Assert.True(growthMb < 100, $"Managed memory grew by {growthMb:0.0} MB while a {Rows}-row snapshot was stored and run.");
    }

    /// <summary>A CSV body generated as it is read: "SKU-n,WH1,0", with SKU-0000001 at 5 and SKU-0000002 at 4.</summary>
    private sealed class GeneratedSnapshot(int rows) : Stream
    {
        private readonly byte[] _line = new byte[64];
        private int _next = -1;
        private int _lineLength;
        private int _linePos;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var written = 0;
            while (written < count)
            {
                if (_linePos == _lineLength)
                {
                    if (_next >= rows)
                    {
                        break;
                    }
                    var text = _next < 0 ? "sku,locationId,onHand\n"
                        : $"SKU-{_next:D7},WH1,{(_next == 1 ? 5 : _next == 2 ? 4 : 0)}\n";
                    _lineLength = Encoding.ASCII.GetBytes(text, _line);
                    _linePos = 0;
                    _next++;
                }
                var n = Math.Min(count - written, _lineLength - _linePos);
                Array.Copy(_line, _linePos, buffer, offset + written, n);
                _linePos += n;
                written += n;
            }
            return written;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
