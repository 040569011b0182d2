using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Ingestion;

namespace Truestock.Server.Http;

/// <summary>
/// CSV imports of stock movements and snapshots (see docs/csv-import.md). The body streams through
/// <see cref="CsvImport"/> — the same code the command line uses — and its rows are decided in
/// batches of up to 1,000 through <see cref="EventEndpoints.Apply"/>, like POST /v1/events.
/// </summary>
internal static class ImportEndpoints
{
    /// <summary>Declares the CSV request body in the OpenAPI document.</summary>
    private static readonly Func<OpenApiOperation, Microsoft.AspNetCore.OpenApi.OpenApiOperationTransformerContext, CancellationToken, Task> CsvRequestBody =
        CsvUploads.RequestBody("The CSV file, UTF-8 (a byte order mark is allowed), RFC 4180 quoting, first row a header.");

    public static void MapImports(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapPost("/v1/imports/movements", PostMovements).WithTags("Imports").RequireScope(Scopes.EventsWrite)
            .Produces<ImportReport>()
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .AddOpenApiOperationTransformer(CsvRequestBody)
            .WithSummary("Import a CSV file of stock movements (one canonical event per row), streamed; answers counts by status and the problems by line.")
            .WithDescription("Body: text/csv, UTF-8, RFC 4180, with a header row naming the event fields (eventId, type, sku, locationId, quantity, occurredAt, source; "
                + "optionally sourceSeq, reason, reservationId, toLocationId, disposition, correlationId). Rows are validated like POST /v1/events and applied in file "
                + "order, in batches; a 200 means every applied row is durable. A bad header is a 422 and changes nothing. See docs/csv-import.md.");
        app.MapPost("/v1/imports/snapshots", PostSnapshot).WithTags("Imports").RequireScope(Scopes.EventsWrite)
            .Produces<ImportReport>()
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .AddOpenApiOperationTransformer(CsvRequestBody).AddOpenApiOperationTransformer(SnapshotParametersRequired)
            .WithSummary("Import a CSV stock snapshot (sku, locationId, onHand per row) as counts as of asOf, streamed; re-importing the same snapshot answers duplicate.")
            .WithDescription("Body: text/csv, UTF-8, RFC 4180, header sku,locationId,onHand and optionally countedAt. Each row becomes a counted event with occurredAt = "
                + "countedAt or asOf and an eventId derived from (source, asOf, sku, locationId). Positions the snapshot does not mention are left alone unless "
                + "zeroMissing=true, which counts them as 0 at the snapshot's locations once every row was accepted. See docs/csv-import.md.");
    }

    private static Task<IResult> PostMovements(HttpContext http, Sequencer engine, HubMetrics metrics, IOptions<HubOptions> options,
        ILoggerFactory logs) =>
        Import(http, engine, metrics, options.Value, logs, CsvImportFormat.Movements, snapshot: null);

    private static async Task<IResult> PostSnapshot(HttpContext http, Sequencer engine, HubMetrics metrics, IOptions<HubOptions> options,
        ILoggerFactory logs,
        [Description("The system the snapshot comes from (1–64 characters); part of every row's eventId.")] string? source,
        [Description("When the snapshot was taken: RFC 3339 with an offset, e.g. 2026-11-23T06:00:00Z. Rows without countedAt are counts as of it.")] string? asOf,
        [Description("true: count every position at the snapshot's locations that it does not mention as 0 as of asOf (only when every row was accepted). Default false: leave them alone.")] string? zeroMissing)
    {
        var input = new JsonInput();
        var parameters = CsvImport.ParseSnapshotParameters(source, asOf, zeroMissing, input);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        return await Import(http, engine, metrics, options.Value, logs, CsvImportFormat.Snapshot, parameters);
    }

    private static async Task<IResult> Import(HttpContext http, Sequencer engine, HubMetrics metrics, HubOptions options, ILoggerFactory logs,
        CsvImportFormat format, SnapshotParameters? snapshot)
    {
        var limit = options.ImportBodyBytesMax;
        if (http.Request.ContentLength > limit)
        {
            return TooLarge(limit, null);
        }
        if (UnsupportedMediaType(http.Request.ContentType) is { } unsupported)
        {
            return unsupported;
        }
        // Imports get their own body limit, above the one for other requests.
        CsvUploads.RaiseBodyLimit(http, limit);
        var settings = new CsvImportSettings
        {
            Format = format,
            LineBytesMax = options.ImportLineBytesMax,
            ColumnsMax = options.ImportColumnsMax,
            BodyBytesMax = limit,
            CorrelationId = http.CorrelationId(),
            Snapshot = snapshot,
        };
        var log = logs.CreateLogger(typeof(ImportEndpoints).FullName!);
        var started = Stopwatch.GetTimestamp();
        CsvImportResult result;
        try
        {
            result = await CsvImport.Run(http.Request.Body, settings, new EngineSink(engine, metrics), log, http.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or BadHttpRequestException or OperationCanceledException && LogCutOff(log, ex, settings, started))
        {
            // Not reached: the filter only logs, and the exception goes on to the host.
            throw;
        }
        if (result is CsvImportResult.Finished { Report: var r } done)
        {
            // One line per import, so operators can match a file to what it did without the response.
            log.LogInformation("CSV import ({Format}, correlation id {CorrelationId}) {Outcome}: {Rows} rows on {Lines} lines in {Seconds:0.0} s; "
                + "{Applied} applied, {Duplicate} duplicate, {Superseded} superseded, {Stale} stale, {Rejected} rejected, {Invalid} invalid.",
                r.Format, r.CorrelationId, done.Stop == CsvImportStop.None ? "finished" : "stopped: " + done.StopDetail, r.Rows, r.LinesRead,
                Stopwatch.GetElapsedTime(started).TotalSeconds, r.Counts.Applied, r.Counts.Duplicate, r.Counts.Superseded, r.Counts.Stale,
                r.Counts.Rejected, r.Counts.Invalid);
        }
        switch (result)
        {
            case CsvImportResult.HeaderRejected header:
                return Problems.Create(StatusCodes.Status422UnprocessableEntity, "invalid-csv-header", "The CSV header is invalid.",
                    header.Detail + " Nothing was imported.", header.Errors);
            case CsvImportResult.Finished { Stop: CsvImportStop.None } finished:
                return Results.Ok(finished.Report);
            case CsvImportResult.Finished { Stop: CsvImportStop.BodyTooLarge } finished:
                return TooLarge(limit, finished.Report);
            case CsvImportResult.Finished finished:
                http.Response.Headers.RetryAfter = "1";
                return Problems.Create(StatusCodes.Status503ServiceUnavailable, "unavailable", "Temporarily unavailable.",
                    $"{finished.StopDetail} The import stopped: the rows counted in 'import' were decided and are durable, the others were not applied. "
                    + "Import the same file again to finish; rows already applied answer duplicate.",
                    extensions: [new("import", finished.Report)]);
            default:
                throw new InvalidOperationException($"Unknown import result {result.GetType().Name}.");
        }
    }

    /// <summary>
    /// Logs an import that ended without an answer (the client went away, the upload broke off): the
    /// batches decided before are durable, and operators should know the file was not read whole.
    /// Returns false, so the exception is not caught.
    /// </summary>
    private static bool LogCutOff(ILogger log, Exception error, CsvImportSettings settings, long started)
    {
        log.LogWarning("CSV import ({Format}, correlation id {CorrelationId}) broke off after {Seconds:0.0} s ({Error}: {Message}); "
            + "the batches decided before are durable, the rest of the file was not read.",
            CsvImport.FormatName(settings.Format), settings.CorrelationId, Stopwatch.GetElapsedTime(started).TotalSeconds, error.GetType().Name, error.Message);
        return false;
    }

    private static IResult TooLarge(long limit, ImportReport? partial)
    {
        if (partial is null)
        {
            return Problems.Create(StatusCodes.Status413PayloadTooLarge, "body-too-large", "The request body is too large.",
                $"Imports are limited to {limit} bytes (ImportBodyBytesMax). Split the file into smaller ones; nothing was imported.");
        }
        return Problems.Create(StatusCodes.Status413PayloadTooLarge, "body-too-large", "The request body is too large.",
            $"Imports are limited to {limit} bytes (ImportBodyBytesMax); the body passed it after line {partial.LinesRead}. The rows before that line were "
            + "applied and are durable (see 'import'); import the rest of the file separately — rows already applied answer duplicate.",
            extensions: [new("import", partial)]);
    }

    /// <summary>A 415 problem unless the body is declared as CSV (or plain text, or not declared), in UTF-8.</summary>
    private static IResult? UnsupportedMediaType(string? contentType) => CsvUploads.CheckMediaType(contentType, out var charset) switch
    {
        null => null,
        CsvMediaTypeFault.NotCsv => Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Unsupported media type.",
            $"Imports take CSV: send 'Content-Type: text/csv' (got '{contentType}'). JSON events go to POST /v1/events."),
        _ => Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Unsupported media type.",
            $"Imports must be UTF-8 (got charset '{charset}'). Convert the file, e.g. iconv -f {charset} -t UTF-8."),
    };

    /// <summary>
    /// Marks source and asOf as required in the OpenAPI document. The handler takes them as optional
    /// strings so that a missing one is answered with the API's own 422 problem, not a bare 400.
    /// </summary>
    private static Task SnapshotParametersRequired(OpenApiOperation operation, Microsoft.AspNetCore.OpenApi.OpenApiOperationTransformerContext context,
        CancellationToken cancellationToken)
    {
        foreach (var parameter in operation.Parameters ?? [])
        {
            if (parameter is OpenApiParameter { Name: "source" or "asOf" } required)
            {
                required.Required = true;
            }
        }
        return Task.CompletedTask;
    }

    /// <summary>The hub's sink: the engine, through the same path as POST /v1/events.</summary>
    private sealed class EngineSink(Sequencer engine, HubMetrics metrics) : ICsvImportSink
    {
        public Task<EventOutcome[]> Apply(List<StockEvent> events) => EventEndpoints.Apply(engine, metrics, events);

        public Task<List<(string Sku, string LocationId)>> UncountedPositions(IReadOnlySet<string> locations, DateTimeOffset asOf) =>
            engine.Read((shard, _) =>
            {
                var found = new List<(string, string)>();
                foreach (var sku in shard.Skus)
                {
                    foreach (var p in shard.PositionsOf(sku))
                    {
                        if (locations.Contains(p.LocationId) && !(p.CountedAt is { } counted && counted.UtcTicks >= asOf.UtcTicks))
                        {
                            found.Add((p.Sku, p.LocationId));
                        }
                    }
                }
                return found;
            });
    }
}
