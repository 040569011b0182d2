using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Truestock.Server.Exceptions;

namespace Truestock.Server.Tests;

/// <summary>Reports over exceptions: oversells, drift by channel and location, and time to resolve; JSON and CSV.</summary>
public sealed class ReportTests
{
    private const string Range = "from=2026-11-23T00:00:00Z&to=2026-11-25T00:00:00Z";

    private static ExceptionWorkflow Workflow(HubServer hub) => new(hub.Journal, hub.Time);

    private static JsonElement[] Rows(JsonElement report) => report.GetProperty("rows").EnumerateArray().ToArray();

    private static DateTimeOffset Bucket(JsonElement row) => row.GetProperty("bucketStart").GetDateTimeOffset();

    private static async Task<string> Csv(HubServer hub, string path, bool byAccept)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, byAccept ? path : path + "&format=csv");
        if (byAccept)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        }
        var response = await hub.Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        return body;
    }

    /// <summary>Four oversells of 3, 2, 1 and 4 units: two on 23 November at 09:00 (WH1, S1), two on the 24th at 09:00 and 11:00 (WH1).</summary>
    private static async Task Oversells(HubServer hub)
    {
        await hub.Setup();
        await hub.Events(HubServer.Event("sold", "A", "WH1", 3), HubServer.Event("sold", "B", "S1", 2));
        await hub.Advance(TimeSpan.FromDays(1));
        await hub.Events(HubServer.Event("sold", "C", "WH1", 1));
        await hub.Advance(TimeSpan.FromHours(2));
        await hub.Events(HubServer.Event("sold", "D", "WH1", 4));
    }

    [Fact]
    public async Task the_oversell_report_counts_oversells_and_units_per_day_and_location()
    {
        await using var hub = await HubServer.Start();
        await Oversells(hub);

        var report = await hub.GetJson("/v1/reports/oversells?" + Range);

        Assert.Equal(("oversells", "day"), (report.Str("report"), report.Str("bucket")));
        Assert.Equal(
            [(new DateTimeOffset(2026, 11, 23, 0, 0, 0, TimeSpan.Zero), "S1", 1L, 2L), (new DateTimeOffset(2026, 11, 23, 0, 0, 0, TimeSpan.Zero), "WH1", 1L, 3L),
             (new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero), "WH1", 2L, 5L)],
            Rows(report).Select(r => (Bucket(r), r.Str("locationId"), r.Long("count"), r.Long("units"))).ToArray());
        Assert.Equal((4L, 10L), (report.GetProperty("totals").Long("count"), report.GetProperty("totals").Long("units")));

        // The range is half-open and exact: the 24th alone, or from 10:00 on the 24th.
        Assert.Equal(2, report.GetProperty("totals").Long("count") - (await hub.GetJson("/v1/reports/oversells?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z"))
            .GetProperty("totals").Long("count"));
        Assert.Equal(4, (await hub.GetJson("/v1/reports/oversells?from=2026-11-24T10:00:00Z&to=2026-11-25T00:00:00Z")).GetProperty("totals").Long("units"));
        // An offset is honoured; an unescaped '+' arrives as a space and is read as '+'.
        Assert.Equal(2, (await hub.GetJson("/v1/reports/oversells?from=2026-11-24T10:00:00+01:00&to=2026-11-25T00:00:00Z")).GetProperty("totals").Long("count"));
        // Without a range: the last 30 days up to now.
        Assert.Equal(4, (await hub.GetJson("/v1/reports/oversells")).GetProperty("totals").Long("count"));
        Assert.Equal(["WH1"], Rows(await hub.GetJson("/v1/reports/oversells?location=WH1&" + Range)).Select(r => r.Str("locationId")).Distinct().ToArray());
    }

    [Fact]
    public async Task the_oversell_report_buckets_by_hour()
    {
        await using var hub = await HubServer.Start();
        await Oversells(hub);

        var report = await hub.GetJson("/v1/reports/oversells?bucket=hour&" + Range);

        Assert.Equal("hour", report.Str("bucket"));
        Assert.Equal(
            [("2026-11-23T09", "S1", 2L), ("2026-11-23T09", "WH1", 3L), ("2026-11-24T09", "WH1", 1L), ("2026-11-24T11", "WH1", 4L)],
            Rows(report).Select(r => (Bucket(r).UtcDateTime.ToString("yyyy-MM-dd'T'HH", System.Globalization.CultureInfo.InvariantCulture), r.Str("locationId"),
                r.Long("units"))).ToArray());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task reports_are_csv_with_accept_text_csv_or_format_csv(bool byAccept)
    {
        await using var hub = await HubServer.Start();
        await Oversells(hub);

        var csv = await Csv(hub, "/v1/reports/oversells?" + Range, byAccept);

        Assert.Equal(
            "bucketStart,locationId,count,units\r\n2026-11-23T00:00:00Z,S1,1,2\r\n2026-11-23T00:00:00Z,WH1,1,3\r\n2026-11-24T00:00:00Z,WH1,2,5\r\n",
            csv);
    }

    [Fact]
    public async Task the_drift_report_sums_drift_per_day_channel_and_location_from_what_reconciliation_raised()
    {
        await using var hub = await HubServer.Start();
        var workflow = Workflow(hub);
        workflow.Raise("drift", "A", null, "web", -2, "The channel shows 2 fewer.");
        workflow.Raise("drift", "B", null, "web", 3, "The channel shows 3 more.");
        workflow.Raise("drift", "C", "WH1", null, -5, "The WMS counted 5 fewer.", new DriftFigures(Expected: 10, Reported: 5, System: "wms"));
        hub.Time.Advance(TimeSpan.FromDays(1));
        workflow.Raise("drift", "A", null, "web", 1, "The channel shows 1 more.");

        var report = await hub.GetJson("/v1/reports/drift?" + Range);

        var day1 = new DateTimeOffset(2026, 11, 23, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(
            new (DateTimeOffset, string?, string?, long, long, long)[] { (day1, null, "WH1", 1, 5, -5), (day1, "web", null, 2, 5, 1), (day1.AddDays(1), "web", null, 1, 1, 1) },
            Rows(report).Select(r => (Bucket(r), Optional(r, "channelId"), Optional(r, "locationId"), r.Long("count"), r.Long("units"),
                r.Long("netUnits"))).ToArray());
        var totals = report.GetProperty("totals");
        Assert.Equal((4L, 11L, -3L), (totals.Long("count"), totals.Long("units"), totals.Long("netUnits")));
        Assert.Equal(2, Rows(await hub.GetJson("/v1/reports/drift?channel=web&" + Range)).Length);
        Assert.Single(Rows(await hub.GetJson("/v1/reports/drift?location=WH1&" + Range)));
        Assert.Equal(4, Rows(await hub.GetJson("/v1/reports/drift?bucket=hour&" + Range)).Sum(r => r.Long("count")));
        Assert.Equal("bucketStart,channelId,locationId,count,units,netUnits\r\n2026-11-23T00:00:00Z,,WH1,1,5,-5\r\n"
            + "2026-11-23T00:00:00Z,web,,2,5,1\r\n2026-11-24T00:00:00Z,web,,1,1,1\r\n", await Csv(hub, "/v1/reports/drift?" + Range, byAccept: false));
    }

    [Fact]
    public async Task the_time_to_resolve_report_measures_from_raised_to_resolved_per_day_and_kind()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var workflow = Workflow(hub);
        var drifts = Enumerable.Range(1, 3).Select(i => workflow.Raise("drift", "D" + i, "WH1", null, 1, "drift").Key).ToArray();
        await hub.Events(HubServer.Event("sold", "OVER", "WH1", 1)); // engine:1 negative-on-hand, engine:2 oversell
        async Task Resolve(string key)
        {
            await Api.AssertJson(await hub.Client.PatchAsJsonAsync("/v1/exceptions/" + key, new { status = "acknowledged" }), HttpStatusCode.OK);
            await Api.AssertJson(await hub.Client.PatchAsJsonAsync("/v1/exceptions/" + key, new { status = "resolved" }), HttpStatusCode.OK);
        }

        await hub.Advance(TimeSpan.FromHours(1));
        await Resolve(drifts[0]);
        await hub.Advance(TimeSpan.FromHours(1));
        await Resolve(drifts[1]);
        await Resolve("engine:2");
        await hub.Advance(TimeSpan.FromHours(24));
        await Resolve(drifts[2]);
        // A reopened exception counts again when it is resolved again; here it stays open.
        await Api.AssertJson(await hub.Client.PatchAsJsonAsync("/v1/exceptions/engine:2", new { status = "open" }), HttpStatusCode.OK);

        var report = await hub.GetJson("/v1/reports/time-to-resolve?" + Range);

        var day1 = new DateTimeOffset(2026, 11, 23, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(
            [(day1, "drift", 2L, 5400.0, 3600.0, 7200.0, 7200.0), (day1, "oversell", 1L, 7200.0, 7200.0, 7200.0, 7200.0),
             (day1.AddDays(1), "drift", 1L, 93600.0, 93600.0, 93600.0, 93600.0)],
            Rows(report).Select(r => (Bucket(r), r.Str("kind"), r.Long("count"), r.GetProperty("meanSeconds").GetDouble(),
                r.GetProperty("medianSeconds").GetDouble(), r.GetProperty("p90Seconds").GetDouble(), r.GetProperty("maxSeconds").GetDouble())).ToArray());
        var totals = report.GetProperty("totals");
        Assert.Equal((4L, 27900.0, 7200.0, 93600.0, 93600.0), (totals.Long("count"), totals.GetProperty("meanSeconds").GetDouble(),
            totals.GetProperty("medianSeconds").GetDouble(), totals.GetProperty("p90Seconds").GetDouble(), totals.GetProperty("maxSeconds").GetDouble()));
        Assert.Equal(3, (await hub.GetJson("/v1/reports/time-to-resolve?kind=drift&" + Range)).GetProperty("totals").Long("count"));
        Assert.StartsWith("bucketStart,kind,count,meanSeconds,medianSeconds,p90Seconds,maxSeconds\r\n2026-11-23T00:00:00Z,drift,2,5400,3600,7200,7200\r\n",
            await Csv(hub, "/v1/reports/time-to-resolve?" + Range, byAccept: true), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("oversells", "from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", "from")]
    [InlineData("oversells", "from=2025-11-01T00:00:00Z&to=2026-11-03T00:00:00Z", "to")]
    [InlineData("drift", "from=yesterday", "from")]
    [InlineData("drift", "to=2026-11-24T00:00:00", "to")]
    [InlineData("drift", "bucket=week", "bucket")]
    [InlineData("time-to-resolve", "format=xml", "format")]
    [InlineData("oversells", "location=a%20b", "location")]
    [InlineData("drift", "channel=a%20b", "channel")]
    [InlineData("time-to-resolve", "kind=two%20words", "kind")]
    public async Task a_report_with_a_bad_parameter_is_422(string report, string query, string field)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.Client.GetAsync($"/v1/reports/{report}?{query}"), field);
    }

    [Fact]
    public async Task a_range_of_exactly_366_days_is_allowed()
    {
        await using var hub = await HubServer.Start();

        var report = await hub.GetJson("/v1/reports/drift?from=2025-11-23T00:00:00Z&to=2026-11-24T00:00:00Z");

        Assert.Empty(Rows(report));
        Assert.Equal(0, report.GetProperty("totals").Long("count"));
    }

    [Fact]
    public async Task reports_need_the_admin_scope()
    {
        await using var hub = await HubServer.Start(
            "--Truestock:ApiKeys:0:Name=ops", "--Truestock:ApiKeys:0:Key=admin-secret", "--Truestock:ApiKeys:0:Scopes:0=admin",
            "--Truestock:ApiKeys:1:Name=reader", "--Truestock:ApiKeys:1:Key=read-secret", "--Truestock:ApiKeys:1:Scopes:0=availability:read");

        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "read-secret");
        foreach (var report in new[] { "drift", "oversells", "time-to-resolve" })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await hub.Client.GetAsync("/v1/reports/" + report)).StatusCode);
        }
        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "admin-secret");
        Assert.Equal(HttpStatusCode.OK, (await hub.Client.GetAsync("/v1/reports/drift")).StatusCode);
    }

    private static string? Optional(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
}
