using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Truestock.Server.Ingestion;
using Xunit.Abstractions;

namespace Truestock.Server.Tests;

/// <summary>
/// CSV imports of movements and snapshots over POST /v1/imports/..., and the <c>import</c> command
/// line: formats, idempotency, per-line problems, limits, and the exit codes.
/// </summary>
public sealed class CsvImportTests
{
    private const string MovementsPath = "/v1/imports/movements";
    private const string Header = "eventId,type,sku,locationId,quantity,occurredAt,source";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // ------------------------------------------------------------------ movements

    [Fact]
    public async Task a_movements_file_applies_every_row_in_file_order_with_the_optional_columns()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = """
            eventId,type,sku,locationId,quantity,occurredAt,source,sourceSeq,reason,toLocationId,disposition,correlationId
            m-1,received,SKU-1,WH1,10,2026-11-23T08:00:00Z,wms,1,,,,
            m-2,adjusted,SKU-1,WH1,-2,2026-11-23T08:01:00Z,wms,2,"shrinkage, aisle 4",,,
            m-3,transfer_shipped,SKU-1,WH1,3,2026-11-23T08:02:00Z,wms,3,,S1,,
            m-4,return_received,SKU-1,S1,1,2026-11-23T08:03:00Z,pos,,,,,
            m-5,inspected,SKU-1,S1,1,2026-11-23T08:04:00Z,pos,,,,damaged,ticket-77
            """;

        var report = await Import(hub, csv, correlationId: "nightly-42");

        Assert.True(report.Complete);
        Assert.Equal(6, report.LinesRead);
        Assert.Equal(5, report.Rows);
        Assert.Equal(new ImportCounts(5, 0, 0, 0, 0, 0), report.Counts);
        Assert.Equal(0, report.ErrorsTotal);
        Assert.Empty(report.Errors);
        Assert.Equal("nightly-42", report.CorrelationId);
        // 10 received − 2 adjusted − 3 shipped away; the transfer is incoming at S1 with a damaged return.
        await hub.AssertQuantities("SKU-1", "WH1", 5, 0, 0, 0, 0, 0, 0, 5);
        await hub.AssertQuantities("SKU-1", "S1", 1, 1, 0, 0, 0, 3, 0, 0);
        var ledger = await HubServer.WholeLedger(hub.Client, "SKU-1", "S1");
        Assert.Equal("nightly-42", ledger.Single(e => e.Str("eventId") == "m-4").Str("correlationId"));
        Assert.Equal("ticket-77", ledger.Single(e => e.Str("eventId") == "m-5").Str("correlationId"));
    }

    [Fact]
    public async Task importing_the_same_movements_file_again_answers_duplicate_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = Movements(("d-1", "received", "SKU-1", "WH1", 10), ("d-2", "sold", "SKU-1", "WH1", 4));

        Assert.Equal(new ImportCounts(2, 0, 0, 0, 0, 0), (await Import(hub, csv)).Counts);
        Assert.Equal(new ImportCounts(0, 2, 0, 0, 0, 0), (await Import(hub, csv)).Counts);

        Assert.Equal(6, await hub.OnHand("SKU-1", "WH1"));
        Assert.Equal(2, (await HubServer.WholeLedger(hub.Client, "SKU-1", "WH1")).Count);
    }

    [Fact]
    public async Task a_utf8_byte_order_mark_crlf_line_breaks_quoted_names_and_blank_lines_are_accepted()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = "\uFEFF\"EventId\",Type,SKU,locationid,QUANTITY,occurredAt,source\r\n"
            + "b-1,received,\"Größe M\",WH1,7,2026-11-23T08:00:00Z,wms\r\n"
            + "\r\n"
            + "b-2,received,\"Größe M\",WH1,1,2026-11-23T08:00:00Z,wms";

        var report = await Import(hub, csv);

        Assert.Equal(new ImportCounts(2, 0, 0, 0, 0, 0), report.Counts);
        Assert.Equal(4, report.LinesRead);
        Assert.Equal(8, await hub.OnHand("Größe M", "WH1"));
    }

    // ------------------------------------------------------------------ per-line problems

    [Fact]
    public async Task problems_name_the_physical_line_and_column_even_after_quoted_commas_and_line_breaks()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = Header + ",reason\n"                                                 // line 1
            + "p-1,adjusted,\"SKU,1\",WH1,5,2026-11-23T08:00:00Z,wms,\"found, back room\"\n" // line 2: a comma inside quotes
            + "p-2,adjusted,SKU-2,WH1,5,2026-11-23T08:00:00Z,wms,\"two\nlines\"\n"       // lines 3–4: a line break inside quotes
            + "p-3,sold,SKU-1,WH1,0,2026-11-23T08:00:00Z,wms,\n"                         // line 5: quantity must be > 0
            + "p-4,received,SKU-1,WH1,abc,yesterday,wms,\n"                              // line 6: two bad fields
            + "p-5,received,SKU-1,WH1,1,2026-11-23T08:00:00Z\n"                          // line 7: a field short
            + "p-6,received,SKU-1,WH1,1,2026-11-23T08:00:00Z,wms,\"open\n"               // lines 8–9: never closed
            + "p-7,received,SKU-1,WH1,1,2026-11-23T08:00:00Z,wms,\n";

        var report = await Import(hub, csv);

        Assert.Equal(9, report.LinesRead);
        Assert.Equal(6, report.Rows);
        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 5), report.Counts);
        Assert.Equal(5, await hub.OnHand("SKU,1", "WH1"));
        var problems = report.Errors.Select(e => (e.Line, e.Column, Slug(e.Type))).ToArray();
        Assert.Equal(
        [
            (3, "reason", "validation-failed"),
            (5, "quantity", "validation-failed"),
            (6, "quantity", "validation-failed"),
            (6, "occurredAt", "validation-failed"),
            (7, null, "csv-syntax"),
            (8, null, "csv-syntax"),
        ], problems);
        Assert.Equal(6, report.ErrorsTotal);
        Assert.Equal("must be more than 0 for sold events.", report.Errors[1].Message);
        Assert.Equal("p-3", report.Errors[1].EventId);
        Assert.Contains("RFC 3339", report.Errors[3].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task rows_the_engine_rejects_are_listed_in_file_order_with_the_rejection_type_while_the_other_rows_apply()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(HubServer.Event("received", "SKU-1", "WH1", 10, eventId: "taken"));
        var csv = Movements(
            ("r-1", "received", "SKU-1", "WH1", 1),
            ("r-2", "received", "SKU-1", "NOWHERE", 1),
            ("r-3", "sold", "SKU-1", "WH1", 0),
            ("taken", "received", "SKU-1", "WH1", 99),
            ("r-5", "received", "SKU-1", "WH1", 2));

        var report = await Import(hub, csv);

        Assert.Equal(new ImportCounts(2, 0, 0, 0, 2, 1), report.Counts);
        Assert.Equal([(3L, "unknown-location"), (4L, "validation-failed"), (5L, "idempotency-conflict")],
            report.Errors.Select(e => (e.Line!.Value, Slug(e.Type))).ToArray());
        Assert.Equal("r-2", report.Errors[0].EventId);
        Assert.Contains("NOWHERE", report.Errors[0].Message, StringComparison.Ordinal);
        Assert.Equal(13, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task the_problem_list_is_bounded_to_the_first_thousand_with_the_total_counted()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = new StringBuilder(Header).Append('\n');
        for (var i = 0; i < 1500; i++)
        {
            csv.Append($"bad-{i},sold,SKU-1,WH1,-1,2026-11-23T08:00:00Z,wms\n");
        }
        csv.Append("good-1,received,SKU-1,WH1,3,2026-11-23T08:00:00Z,wms\n");

        var report = await Import(hub, csv.ToString());

        Assert.Equal(1500, report.ErrorsTotal);
        Assert.Equal(CsvImport.ErrorsListedMax, report.Errors.Count);
        Assert.Equal(2, report.Errors[0].Line);
        Assert.Equal(1001, report.Errors[^1].Line);
        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 1500), report.Counts);
        Assert.Equal(3, await hub.OnHand("SKU-1", "WH1"));
    }

    // ------------------------------------------------------------------ whole-file refusals

    [Theory]
    [InlineData("eventId,type,sku,locationId,quantity,occurredAt,source,quantiy", "'quantiy' is not a column")]
    [InlineData("eventId,type,sku,locationId,quantity,occurredAt", "The required column 'source' is missing.")]
    [InlineData("eventId,type,sku,locationId,quantity,occurredAt,source,sku", "The column 'sku' appears more than once.")]
    [InlineData("e-1,received,SKU-1,WH1,5,2026-11-23T08:00:00Z,wms", "'e-1' is not a column")]
    public async Task a_malformed_header_is_a_422_problem_and_changes_nothing(string header, string expected)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = header + "\nh-1,received,SKU-1,WH1,5,2026-11-23T08:00:00Z,wms\n";

        var response = await PostCsv(hub, MovementsPath, csv);

        var problem = await Api.AssertFieldError(response, "header");
        Assert.EndsWith("invalid-csv-header", problem.Str("type"), StringComparison.Ordinal);
        Assert.Contains(problem.GetProperty("errors").GetProperty("header").EnumerateArray(),
            m => m.GetString()!.Contains(expected, StringComparison.Ordinal));
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));
        Assert.Empty(await HubServer.WholeLedger(hub.Client, "SKU-1", "WH1"));
    }

    [Fact]
    public async Task an_empty_body_is_a_422_problem_asking_for_a_header()
    {
        await using var hub = await HubServer.Start();

        var problem = await Api.AssertFieldError(await PostCsv(hub, MovementsPath, ""), "header");

        Assert.Contains("empty", problem.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_body_that_is_not_csv_is_refused_with_415()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertStatusAndType(await PostCsv(hub, MovementsPath, "{\"events\":[]}", "application/json"),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        var latin1 = new ByteArrayContent("x"u8.ToArray());
        latin1.Headers.ContentType = MediaTypeHeaderValue.Parse("text/csv; charset=iso-8859-1");
        await Api.AssertStatusAndType(await hub.Client.PostAsync(MovementsPath, latin1), HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
    }

    [Fact]
    public async Task imports_need_the_events_write_scope_when_api_keys_are_configured()
    {
        await using var hub = await HubServer.Start(
            "--Truestock:ApiKeys:0:Name=reader", "--Truestock:ApiKeys:0:Key=read-secret", "--Truestock:ApiKeys:0:Scopes:0=availability:read",
            "--Truestock:ApiKeys:1:Name=erp", "--Truestock:ApiKeys:1:Key=write-secret", "--Truestock:ApiKeys:1:Scopes:0=events:write");
        var csv = Header + "\n";

        await Api.AssertStatusAndType(await PostCsv(hub, MovementsPath, csv), HttpStatusCode.Unauthorized, "unauthorized");
        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "read-secret");
        await Api.AssertStatusAndType(await PostCsv(hub, MovementsPath, csv), HttpStatusCode.Forbidden, "forbidden");
        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "write-secret");
        await Api.AssertJson(await PostCsv(hub, MovementsPath, csv), HttpStatusCode.OK);
    }

    // ------------------------------------------------------------------ limits

    [Fact]
    public async Task a_row_longer_than_the_line_limit_is_a_line_error_and_the_rows_after_it_still_apply()
    {
        await using var hub = await HubServer.Start("--Truestock:ImportLineBytesMax=120");
        await hub.Setup();
        var csv = Header + ",reason\n"
            + $"l-1,adjusted,SKU-1,WH1,5,2026-11-23T08:00:00Z,wms,{new string('x', 200)}\n"
            + "l-2,received,SKU-1,WH1,2,2026-11-23T08:00:00Z,wms,\n";

        var report = await Import(hub, csv);

        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 1), report.Counts);
        var error = Assert.Single(report.Errors);
        Assert.Equal((2L, "line-too-long"), (error.Line!.Value, Slug(error.Type)));
        Assert.Contains("ImportLineBytesMax", error.Message, StringComparison.Ordinal);
        Assert.Equal(2, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_row_with_more_fields_than_the_column_limit_is_a_line_error()
    {
        await using var hub = await HubServer.Start("--Truestock:ImportColumnsMax=9");
        await hub.Setup();
        var csv = Header + "\n"
            + "c-1,received,SKU-1,WH1,5,2026-11-23T08:00:00Z,wms" + string.Concat(Enumerable.Repeat(",", 20)) + "\n"
            + "c-2,received,SKU-1,WH1,5,2026-11-23T08:00:00Z,wms,\n"
            + "c-3,received,SKU-1,WH1,2,2026-11-23T08:00:00Z,wms\n";

        var report = await Import(hub, csv);

        Assert.Equal([(2L, "too-many-columns"), (3L, "csv-syntax")], report.Errors.Select(e => (e.Line!.Value, Slug(e.Type))).ToArray());
        Assert.Equal(2, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_header_with_more_columns_than_the_limit_is_a_422()
    {
        await using var hub = await HubServer.Start("--Truestock:ImportColumnsMax=5");

        var problem = await Api.AssertFieldError(await PostCsv(hub, MovementsPath, Header + "\n"), "header");

        Assert.Contains("ImportColumnsMax", problem.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_body_declared_larger_than_the_import_limit_is_refused_with_413_before_anything_applies()
    {
        await using var hub = await HubServer.Start("--Truestock:ImportBodyBytesMax=1000");
        await hub.Setup();
        var csv = Movements(Enumerable.Range(0, 40).Select(i => ($"big-{i}", "received", "SKU-1", "WH1", 1L)).ToArray());
        Assert.True(Encoding.UTF8.GetByteCount(csv) > 1000);

        var problem = await Api.AssertProblem(await PostCsv(hub, MovementsPath, csv), HttpStatusCode.RequestEntityTooLarge, "body-too-large");

        Assert.Contains("ImportBodyBytesMax", problem.Str("detail"), StringComparison.Ordinal);
        Assert.False(problem.TryGetProperty("import", out _));
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_streamed_body_that_passes_the_import_limit_stops_with_413_and_reports_what_was_applied_before()
    {
        await using var hub = await HubServer.Start("--Truestock:ImportBodyBytesMax=1000");
        await hub.Setup();
        var csv = Movements(Enumerable.Range(0, 40).Select(i => ($"big-{i}", "received", "SKU-1", "WH1", 1L)).ToArray());
        // No Content-Length: the hub only finds out while reading.
        var content = new StreamContent(new NoLengthStream(Encoding.UTF8.GetBytes(csv)));
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv");

        var problem = await Api.AssertProblem(await hub.Client.PostAsync(MovementsPath, content), HttpStatusCode.RequestEntityTooLarge, "body-too-large");

        var partial = problem.GetProperty("import").Deserialize<ImportReport>(Json)!;
        Assert.False(partial.Complete);
        Assert.InRange(partial.Counts.Applied, 1, 39);
        // Whole rows within the limit applied, and nothing else: the row cut by the limit is not read as a row.
        Assert.Equal(partial.Counts.Applied, partial.Rows);
        Assert.Equal(partial.Counts.Applied, await hub.OnHand("SKU-1", "WH1"));
    }

    // ------------------------------------------------------------------ a cut-off upload

    [Fact]
    public async Task an_upload_cut_off_midway_keeps_the_batches_applied_and_importing_the_file_again_finishes_it()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        const int rows = 5000;
        var csv = Encoding.UTF8.GetBytes(Movements(Enumerable.Range(0, rows).Select(i => ($"cut-{i}", "received", "SKU-1", "WH1", 1L)).ToArray()));
        using var observer = new HttpClient { BaseAddress = hub.BaseAddress };
        // The upload breaks after 3,500 rows, once the hub has applied at least one batch of them.
        var breaking = new BreakingStream(csv, csv.Length * 7 / 10, async () =>
        {
            while (await ObservedOnHand(observer) < 1000)
            {
                await Task.Delay(20);
            }
        });
        var content = new StreamContent(breaking);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv");

        await Assert.ThrowsAnyAsync<Exception>(() => hub.Client.PostAsync(MovementsPath, content));

        var again = await Import(hub, Encoding.UTF8.GetString(csv));
        Assert.Equal(rows, again.Counts.Applied + again.Counts.Duplicate);
        Assert.True(again.Counts.Duplicate >= 1000, $"the batches applied before the cut answer duplicate: {again.Counts}");
        Assert.Equal(rows, await hub.OnHand("SKU-1", "WH1"));
    }

    private static async Task<long> ObservedOnHand(HttpClient client)
    {
        var view = JsonDocument.Parse(await client.GetStringAsync("/v1/availability/SKU-1")).RootElement;
        return view.GetProperty("locations").EnumerateArray().Single(l => l.Str("locationId") == "WH1").Long("onHand");
    }

    // ------------------------------------------------------------------ snapshots

    [Fact]
    public async Task a_snapshot_counts_each_row_as_of_as_of_and_later_movements_still_count()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        // A sale after the snapshot was taken arrived before it: the count must not swallow it.
        await hub.Events(HubServer.Event("sold", "SKU-1", "WH1", 2, T(7)));
        var csv = "sku,locationId,onHand\nSKU-1,WH1,40\nSKU-2,WH1,0\nSKU-1,S1,5\n";

        var report = await ImportSnapshot(hub, csv, "erp", "2026-11-23T06:00:00Z");

        Assert.Equal("snapshot", report.Format);
        Assert.Equal(new ImportCounts(3, 0, 0, 0, 0, 0), report.Counts);
        Assert.Equal(38, await hub.OnHand("SKU-1", "WH1"));
        Assert.Equal(5, await hub.OnHand("SKU-1", "S1"));
        var count = (await HubServer.WholeLedger(hub.Client, "SKU-1", "WH1")).Single(e => e.Str("type") == "counted");
        Assert.Equal(CsvImport.SnapshotEventId("erp", T(6), "SKU-1", "WH1"), count.Str("eventId"));
        Assert.Equal("erp", count.Str("source"));
        Assert.Equal(T(6), count.GetProperty("occurredAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task importing_the_same_snapshot_again_answers_duplicate_and_the_same_instant_in_another_offset_is_the_same_snapshot()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var csv = "sku,locationId,onHand\nSKU-1,WH1,40\nSKU-2,WH1,3\n";
        await ImportSnapshot(hub, csv, "erp", "2026-11-23T06:00:00Z");

        var again = await ImportSnapshot(hub, csv, "erp", "2026-11-23T07:00:00+01:00");

        Assert.Equal(new ImportCounts(0, 2, 0, 0, 0, 0), again.Counts);
        Assert.Equal(40, await hub.OnHand("SKU-1", "WH1"));
        Assert.Single(await HubServer.WholeLedger(hub.Client, "SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_snapshot_row_may_carry_its_own_counted_at_and_an_older_snapshot_is_stale()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await ImportSnapshot(hub, "sku,locationId,onHand\nSKU-1,WH1,40\n", "erp", "2026-11-23T06:00:00Z");

        var report = await ImportSnapshot(hub, "sku,locationId,onHand,countedAt\nSKU-1,WH1,10,\nSKU-2,WH1,7,2026-11-23T05:30:00Z\n",
            "erp", "2026-11-23T05:00:00Z");

        Assert.Equal(new ImportCounts(1, 0, 0, 1, 0, 0), report.Counts);
        Assert.Equal(40, await hub.OnHand("SKU-1", "WH1"));
        var count = (await HubServer.WholeLedger(hub.Client, "SKU-2", "WH1")).Single();
        Assert.Equal(T(5).AddMinutes(30), count.GetProperty("occurredAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task a_snapshot_leaves_the_positions_it_does_not_mention_alone_by_default()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-OLD", "WH1", 9);

        var report = await ImportSnapshot(hub, "sku,locationId,onHand\nSKU-1,WH1,4\n", "erp", "2026-11-23T10:00:00Z");

        Assert.False(report.Snapshot!.ZeroMissing);
        Assert.Null(report.Snapshot.Zeroed);
        Assert.Equal(9, await hub.OnHand("SKU-OLD", "WH1"));
    }

    [Fact]
    public async Task with_zero_missing_a_snapshot_counts_unmentioned_positions_at_its_locations_as_zero_and_no_others()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(
            HubServer.Event("received", "SKU-OLD", "WH1", 9, T(5)),
            HubServer.Event("received", "SKU-OLD", "S1", 6, T(5)),
            HubServer.Event("sold", "SKU-GONE", "WH1", 1, T(7)));
        var csv = "sku,locationId,onHand\nSKU-1,WH1,4\n";

        var report = await ImportSnapshot(hub, csv, "erp", "2026-11-23T06:00:00Z", zeroMissing: true);

        Assert.Equal(["WH1"], report.Snapshot!.Locations);
        Assert.Equal(new ImportCounts(2, 0, 0, 0, 0, 0), report.Snapshot.Zeroed);
        Assert.Null(report.Snapshot.ZeroSkipped);
        Assert.Equal(4, await hub.OnHand("SKU-1", "WH1"));
        Assert.Equal(0, await hub.OnHand("SKU-OLD", "WH1"));
        // A sale after asOf is still counted against the zero, and another location is not the snapshot's.
        Assert.Equal(-1, await hub.OnHand("SKU-GONE", "WH1"));
        Assert.Equal(6, await hub.OnHand("SKU-OLD", "S1"));

        var again = await ImportSnapshot(hub, csv, "erp", "2026-11-23T06:00:00Z", zeroMissing: true);
        Assert.Equal(new ImportCounts(0, 1, 0, 0, 0, 0), again.Counts);
        Assert.Equal(new ImportCounts(0, 0, 0, 0, 0, 0), again.Snapshot!.Zeroed);
        Assert.Equal(0, await hub.OnHand("SKU-OLD", "WH1"));
    }

    [Fact]
    public async Task with_zero_missing_nothing_is_zeroed_when_a_row_of_the_snapshot_failed()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-OLD", "WH1", 9);

        var report = await ImportSnapshot(hub, "sku,locationId,onHand\nSKU-1,WH1,4\nSKU-2,WH1,-3\n", "erp", "2026-11-23T10:00:00Z", zeroMissing: true);

        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 1), report.Counts);
        Assert.Equal((3L, "onHand", "must be 0 or more for counted events."),
            (report.Errors.Single().Line!.Value, report.Errors.Single().Column, report.Errors.Single().Message));
        Assert.Null(report.Snapshot!.Zeroed);
        Assert.Contains("1 row(s) failed", report.Snapshot.ZeroSkipped, StringComparison.Ordinal);
        Assert.Equal(9, await hub.OnHand("SKU-OLD", "WH1"));
    }

    [Fact]
    public async Task zero_missing_with_a_counted_at_column_is_refused_as_a_whole()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var response = await PostCsv(hub, SnapshotPath("erp", "2026-11-23T06:00:00Z", zeroMissing: true), "sku,locationId,onHand,countedAt\nSKU-1,WH1,4,\n");

        var problem = await Api.AssertFieldError(response, "header");
        Assert.Contains("countedAt", problem.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task snapshot_parameters_are_validated_like_event_fields()
    {
        await using var hub = await HubServer.Start();

        var problem = await Api.AssertProblem(await PostCsv(hub, "/v1/imports/snapshots?asOf=2026-11-23T06:00:00&zeroMissing=maybe", "sku,locationId,onHand\n"),
            HttpStatusCode.UnprocessableEntity, "validation-failed");

        Assert.Equal(["asOf", "source", "zeroMissing"], Api.ErrorKeys(problem).Order(StringComparer.Ordinal).ToArray());
    }

    // ------------------------------------------------------------------ the parser on its own

    [Fact]
    public async Task the_record_reader_reads_the_same_records_whatever_the_sizes_of_the_reads()
    {
        var text = "\uFEFFa,\"b \"\"quoted\"\"\",c\r\n\r\n\"multi\r\nline\",,\"x,y\"\n\"last\"\r";
        var bytes = Encoding.UTF8.GetBytes(text);

        var whole = await ReadAll(new MemoryStream(bytes));
        var trickle = await ReadAll(new TrickleStream(bytes));

        Assert.Equal(whole, trickle);
        Assert.Equal(["1: a|b \"quoted\"|c", "3: multi\r\nline||x,y", "5: last"], whole);
    }

    // ------------------------------------------------------------------ OpenAPI

    [Fact]
    public async Task the_import_endpoints_are_in_the_openapi_document_with_summaries_and_a_csv_body()
    {
        await using var hub = await HubServer.Start();

        var paths = (await hub.GetJson("/openapi/v1.json")).GetProperty("paths");

        foreach (var path in new[] { "/v1/imports/movements", "/v1/imports/snapshots" })
        {
            var post = paths.GetProperty(path).GetProperty("post");
            Assert.False(string.IsNullOrWhiteSpace(post.Str("summary")));
            Assert.True(post.GetProperty("requestBody").GetProperty("content").TryGetProperty("text/csv", out _), path);
        }
        var parameters = paths.GetProperty("/v1/imports/snapshots").GetProperty("post").GetProperty("parameters")
            .EnumerateArray().Select(p => p.Str("name")).ToArray();
        Assert.Equal(["asOf", "source", "zeroMissing"], parameters.Order(StringComparer.Ordinal).ToArray());
    }

    // ------------------------------------------------------------------ the command line

    [Fact]
    public async Task the_command_line_imports_a_movements_file_shows_progress_and_a_summary_and_exits_0()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        using var file = new TempFile(Movements(("cli-1", "received", "SKU-1", "WH1", 10), ("cli-2", "sold", "SKU-1", "WH1", 3)));

        var (exit, output, progress) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString());

        Assert.Equal(CsvImportCommand.ExitOk, exit);
        Assert.Contains("Imported", output, StringComparison.Ordinal);
        Assert.Contains("2 row(s) on 3 line(s)", output, StringComparison.Ordinal);
        Assert.Contains("applied 2 · duplicate 0", output, StringComparison.Ordinal);
        Assert.Contains("3 lines", progress, StringComparison.Ordinal);
        Assert.Contains("100.0%", progress, StringComparison.Ordinal);
        Assert.Equal(7, await hub.OnHand("SKU-1", "WH1"));

        var (again, secondOutput, _) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString());
        Assert.Equal(CsvImportCommand.ExitOk, again);
        Assert.Contains("applied 0 · duplicate 2", secondOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task the_command_line_prints_each_failed_row_by_line_and_exits_1()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        using var file = new TempFile(Movements(("f-1", "received", "SKU-1", "WH1", 10), ("f-2", "sold", "SKU-1", "WH1", -3),
            ("f-3", "received", "SKU-1", "NOWHERE", 1)));

        var (exit, output, _) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString());

        Assert.Equal(CsvImportCommand.ExitRowsFailed, exit);
        Assert.Contains("line 3, quantity: must be more than 0 for sold events. [validation-failed] (eventId f-2)", output, StringComparison.Ordinal);
        Assert.Contains("line 4: Location 'NOWHERE' is not declared", output, StringComparison.Ordinal);
        Assert.Contains("2 row(s) failed", output, StringComparison.Ordinal);
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task the_command_line_imports_a_snapshot_with_zero_missing_and_can_print_the_report_as_json()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-OLD", "WH1", 9);
        using var file = new TempFile("sku,locationId,onHand\nSKU-1,WH1,12\n");

        var (exit, output, _) = await Cli("snapshot", file.Path, "--source", "erp", "--as-of", "2026-11-23T10:00:00Z", "--zero-missing", "--json",
            "--hub", hub.BaseAddress.ToString());

        Assert.Equal(CsvImportCommand.ExitOk, exit);
        var report = JsonSerializer.Deserialize<ImportReport>(output, Json)!;
        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 0), report.Counts);
        Assert.Equal(new ImportCounts(1, 0, 0, 0, 0, 0), report.Snapshot!.Zeroed);
        Assert.Equal(12, await hub.OnHand("SKU-1", "WH1"));
        Assert.Equal(0, await hub.OnHand("SKU-OLD", "WH1"));
    }

    [Fact]
    public async Task the_command_line_reports_a_refused_header_and_exits_3()
    {
        await using var hub = await HubServer.Start();
        using var file = new TempFile("eventId,kind\n" + string.Concat(Enumerable.Repeat("x,y\n", 200_000)));

        var (exit, output, _) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString());

        Assert.Equal(CsvImportCommand.ExitIncomplete, exit);
        Assert.Contains("422 (invalid-csv-header)", output, StringComparison.Ordinal);
        Assert.Contains("'kind' is not a column", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task the_command_line_asks_for_an_api_key_when_the_hub_wants_one()
    {
        await using var hub = await HubServer.Start("--Truestock:ApiKeys:0:Name=erp", "--Truestock:ApiKeys:0:Key=write-secret",
            "--Truestock:ApiKeys:0:Scopes:0=events:write");
        using var file = new TempFile(Header + "\n");

        var (refused, output, _) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString());
        var (accepted, _, _) = await Cli("movements", file.Path, "--hub", hub.BaseAddress.ToString(), "--api-key", "write-secret");

        Assert.Equal(CsvImportCommand.ExitIncomplete, refused);
        Assert.Contains("--api-key", output, StringComparison.Ordinal);
        Assert.Equal(CsvImportCommand.ExitOk, accepted);
    }

    [Fact]
    public async Task the_command_line_says_how_to_start_the_hub_when_it_cannot_reach_it_and_exits_4()
    {
        using var file = new TempFile(Header + "\n");
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var (exit, output, _) = await Cli("movements", file.Path, "--hub", $"http://127.0.0.1:{port}");

        Assert.Equal(CsvImportCommand.ExitUnavailable, exit);
        Assert.Contains("Cannot reach the hub", output, StringComparison.Ordinal);
        Assert.Contains("dotnet run --project src/Truestock.Server", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task the_command_line_check_validates_a_file_with_the_hubs_rules_without_a_hub()
    {
        using var file = new TempFile(Movements(("k-1", "received", "SKU-1", "WH1", 10), ("k-2", "sold", "SKU-1", "WH1", 0)));

        var (exit, output, _) = await Cli("movements", file.Path, "--check", "--hub", "http://127.0.0.1:1");

        Assert.Equal(CsvImportCommand.ExitRowsFailed, exit);
        Assert.Contains("line 3, quantity: must be more than 0 for sold events.", output, StringComparison.Ordinal);
        Assert.Contains("valid 1 · invalid 1", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("everything", "x.csv")]
    [InlineData("snapshot", "x.csv", "--source", "erp")]
    [InlineData("snapshot", "x.csv", "--source", "erp", "--as-of", "tomorrow")]
    [InlineData("movements", "x.csv", "--as-of", "2026-11-23T06:00:00Z")]
    [InlineData("movements")]
    [InlineData("movements", "does-not-exist.csv")]
    public async Task the_command_line_explains_a_wrong_invocation_and_exits_2(params string[] args)
    {
        var (exit, _, progress) = await Cli(args);

        Assert.Equal(CsvImportCommand.ExitUsage, exit);
        Assert.Contains("error:", progress, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ helpers

    private static DateTimeOffset T(int hour) => new(2026, 11, 23, hour, 0, 0, TimeSpan.Zero);

    private static string Slug(string type) => type[(type.LastIndexOf('/') + 1)..];

    internal static string Movements(params (string Id, string Type, string Sku, string Location, long Quantity)[] rows)
    {
        var csv = new StringBuilder(Header).Append('\n');
        foreach (var (id, type, sku, location, quantity) in rows)
        {
            csv.Append($"{id},{type},{sku},{location},{quantity},2026-11-23T08:00:00Z,wms\n");
        }
        return csv.ToString();
    }

    private static string SnapshotPath(string source, string asOf, bool zeroMissing = false) =>
        $"/v1/imports/snapshots?source={Uri.EscapeDataString(source)}&asOf={Uri.EscapeDataString(asOf)}{(zeroMissing ? "&zeroMissing=true" : "")}";

    private static Task<HttpResponseMessage> PostCsv(HubServer hub, string path, string csv, string contentType = "text/csv") =>
        hub.Client.PostAsync(path, new StringContent(csv, Encoding.UTF8, contentType));

    private static async Task<ImportReport> Import(HubServer hub, string csv, string path = MovementsPath, string? correlationId = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(csv, Encoding.UTF8, "text/csv") };
        if (correlationId is not null)
        {
            request.Headers.Add("X-Correlation-Id", correlationId);
        }
        var json = await Api.AssertJson(await hub.Client.SendAsync(request), HttpStatusCode.OK);
        return json.Deserialize<ImportReport>(Json)!;
    }

    private static Task<ImportReport> ImportSnapshot(HubServer hub, string csv, string source, string asOf, bool zeroMissing = false) =>
        Import(hub, csv, SnapshotPath(source, asOf, zeroMissing));

    private static async Task<(int Exit, string Output, string Progress)> Cli(params string[] args)
    {
        using var output = new StringWriter();
        using var progress = new StringWriter();
        var exit = await CsvImportCommand.Run(args, output, progress, progressInPlace: false, handler: null, CancellationToken.None);
        return (exit, output.ToString(), progress.ToString());
    }

    private static async Task<string[]> ReadAll(Stream stream)
    {
        var reader = new CsvRecordReader(stream, 1024, 16);
        var records = new List<string>();
        while (await reader.ReadAsync(CancellationToken.None))
        {
            var fields = Enumerable.Range(0, reader.FieldCount).Select(i => Encoding.UTF8.GetString(reader.Field(i)));
            records.Add($"{reader.RecordLine}: {string.Join('|', fields)}");
        }
        return [.. records];
    }

    private sealed class TempFile : IDisposable
    {
        public TempFile(string content)
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"truestock-import-{Guid.NewGuid():N}.csv");
            File.WriteAllText(Path, content);
        }

        public string Path { get; }

        public void Dispose() => File.Delete(Path);
    }

    /// <summary>A stream that hides its length, so HttpClient sends it chunked.</summary>
    private sealed class NoLengthStream(byte[] data) : ReadOnlyStream
    {
        private int _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(count, data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
            _position += n;
            return n;
        }
    }

    /// <summary>Returns its bytes one or two at a time, so every record, quote and line break straddles reads.</summary>
    private sealed class TrickleStream(byte[] data) : ReadOnlyStream
    {
        private int _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, 1 + (_position % 2)), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
            _position += n;
            return n;
        }
    }

    /// <summary>Sends its bytes up to a point, waits for a condition, then fails like a dropped connection.</summary>
    private sealed class BreakingStream(byte[] data, int breakAt, Func<Task> beforeBreaking) : ReadOnlyStream
    {
        private int _position;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Only asynchronous reads.");

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= breakAt)
            {
                await beforeBreaking();
                throw new IOException("The test cut the upload off.");
            }
            var n = Math.Min(Math.Min(buffer.Length, 16 * 1024), breakAt - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}

/// <summary>
/// A million-line import, on its own (so that the memory it measures is its own): the file is
/// generated as a stream while it is uploaded and never exists whole, in the test or in the hub.
/// </summary>
[Collection(Disruptive.Name)]
public sealed class CsvImportMemoryTests(ITestOutputHelper log)
{
    private const int Lines = 1_000_000;
    private const int DistinctEvents = 100_000;

    [Fact]
    public async Task a_million_line_movements_file_streams_through_the_hub_in_bounded_memory()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        // Every event appears ten times, as when a source re-sends its log: the first 100,000 lines are
        // journaled and the rest are decided as duplicates. The engine's own memory (ids remembered
        // for idempotency) then stays small, so what is measured is the import's, and the journal's
        // write rate does not set the test's duration.
        var file = new GeneratedMovements(Lines, DistinctEvents);
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true));
                await Task.Delay(250);
            }
        });
        var clock = Stopwatch.StartNew();

        var content = new StreamContent(file, 64 * 1024);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv");
        // One request carries the whole file; on PostgreSQL (one round trip per journal row) it takes
        // minutes on a small machine, longer than the test client's default time limit.
        using var patient = new HttpClient { BaseAddress = hub.BaseAddress, Timeout = TimeSpan.FromMinutes(15) };
        var response = await patient.PostAsync("/v1/imports/movements", content);
        var report = (await Api.AssertJson(response, HttpStatusCode.OK)).Deserialize<ImportReport>(new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

        clock.Stop();
        await sampling.CancelAsync();
        await sampler;
        var retained = GC.GetTotalMemory(forceFullCollection: true);
        const long mebibyte = 1024 * 1024;
        log.WriteLine($"{Lines:N0} lines ({file.BytesProduced / mebibyte:N0} MiB) in {clock.Elapsed.TotalSeconds:0.0} s; managed memory: "
            + $"baseline {baseline / mebibyte} MiB, peak {peak / mebibyte} MiB (+{(peak - baseline) / mebibyte} MiB), after {retained / mebibyte} MiB");

        Assert.True(report.Complete);
        Assert.Equal(Lines + 1, report.LinesRead);
        Assert.Equal(Lines, report.Rows);
        Assert.Equal(new ImportCounts(DistinctEvents, Lines - DistinctEvents, 0, 0, 0, 0), report.Counts);
        Assert.Equal(0, report.ErrorsTotal);
        Assert.Equal(file.ExpectedOnHand("SKU-0000"), await hub.OnHand("SKU-0000", "WH1"));
        // The file is ~60 MiB of bytes (~120 MiB as text); holding it, or its million events, would pass this bound many times over.
        Assert.True(peak - baseline < 64 * mebibyte,
            $"managed memory grew by {(peak - baseline) / mebibyte} MiB during the import (baseline {baseline / mebibyte} MiB, peak {peak / mebibyte} MiB)");
    }

    /// <summary>Movement lines generated on demand: header, then line i is event i mod distinct.</summary>
    private sealed class GeneratedMovements(int lines, int distinct) : ReadOnlyStream
    {
        private readonly byte[] _line = new byte[128];
        private int _next = -1;
        private int _lineLength;
        private int _lineOffset;

        public long BytesProduced { get; private set; }

        public long ExpectedOnHand(string sku)
        {
            long sum = 0;
            for (var id = 0; id < distinct; id++)
            {
                if (Sku(id) == sku)
                {
                    sum += Quantity(id);
                }
            }
            return sum;
        }

        private static string Sku(int id) => $"SKU-{id % 1000:0000}";

        private static int Quantity(int id) => 1 + (id % 7);

        public override int Read(byte[] buffer, int offset, int count) => Fill(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Fill(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Fill(buffer.AsSpan(offset, count)));

        private int Fill(Span<byte> buffer)
        {
            var written = 0;
            while (written < buffer.Length)
            {
                if (_lineOffset == _lineLength && !NextLine())
                {
                    break;
                }
                var n = Math.Min(buffer.Length - written, _lineLength - _lineOffset);
                _line.AsSpan(_lineOffset, n).CopyTo(buffer[written..]);
                _lineOffset += n;
                written += n;
            }
            BytesProduced += written;
            return written;
        }

        private bool NextLine()
        {
            if (_next >= lines)
            {
                return false;
            }
            var text = _next < 0
                ? "eventId,type,sku,locationId,quantity,occurredAt,source\n"
                : $"mv-{_next % distinct},received,{Sku(_next % distinct)},WH1,{Quantity(_next % distinct)},2026-11-23T08:00:00Z,wms\n";
            _lineLength = Encoding.UTF8.GetBytes(text, _line);
            _lineOffset = 0;
            _next++;
            return true;
        }
    }
}

/// <summary>The boilerplate of a forward-only stream for tests that feed uploads.</summary>
public abstract class ReadOnlyStream : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
