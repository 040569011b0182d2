using System.Globalization;
using Truestock.Core;
using Truestock.Server.Engine;

namespace Truestock.Server.Http;

internal static class AvailabilityEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;

    public static void MapAvailability(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/availability/{sku}", GetAvailability).WithTags("Availability").RequireScope(Scopes.AvailabilityRead)
            .Produces<AvailabilityView>().WithSummary("Quantities of a SKU at every location and its ATS on every channel.");
        app.MapGet("/v1/channels/{channelId}/availability", GetChannelAvailability).WithTags("Availability").RequireScope(Scopes.AvailabilityRead)
            .Produces<ChannelAvailabilityView>().WithSummary("ATS of up to 500 SKUs on one channel (?sku=A&sku=B).");
        app.MapGet("/v1/positions/{sku}/{locationId}/ledger", GetLedger).WithTags("Availability").RequireScope(Scopes.AvailabilityRead)
            .Produces<LedgerPage>().WithSummary("The ledger of one position, oldest first, with cursor paging (?after=&limit=).");
    }

    private static async Task<IResult> GetAvailability(string sku, Sequencer engine)
    {
        if (!JsonInput.IsSku(sku))
        {
            return Problems.Unprocessable("validation-failed", "sku must be 1–64 characters without control characters.", "sku");
        }
        var view = await engine.Read((s, now) =>
        {
            // Every declared location is listed, so an unknown SKU shows all quantities 0.
            var locations = s.Locations.OrderBy(l => l.Id, StringComparer.Ordinal)
                .Select(l => Views.Of(l.Id, s.FindPosition(sku, l.Id))).ToArray();
            var channels = s.Channels.OrderBy(c => c.Id, StringComparer.Ordinal)
                .Select(c => new ChannelAtsView(c.Id, s.Ats(c, sku, now), BufferView.Of(s, c, sku, now))).ToArray();
            return new AvailabilityView(sku, locations, channels);
        });
        return Results.Ok(view);
    }

    private static async Task<IResult> GetChannelAvailability(string channelId, HttpRequest request, Sequencer engine)
    {
        var skus = request.Query["sku"];
        var input = new JsonInput();
        if (skus.Count == 0)
        {
            input.Invalid("sku", "give at least one ?sku=.");
        }
        else if (skus.Count > Limits.BulkSkusMax)
        {
            input.Invalid("sku", $"at most {Limits.BulkSkusMax} SKUs per request; got {skus.Count}.");
        }
        else if (skus.Any(s => s is null || !JsonInput.IsSku(s)))
        {
            input.Invalid("sku", "every sku must be 1–64 characters without control characters.");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var view = await engine.Read((s, now) => s.FindChannel(channelId) is { } c
            ? new ChannelAvailabilityView(c.Id, skus.Select(sku => new SkuAtsView(sku!, s.Ats(c, sku!, now), BufferView.Of(s, c, sku!, now))).ToArray())
            : null);
        return view is null ? Problems.NotFound("unknown-channel", $"Channel '{channelId}' is not declared.") : Results.Ok(view);
    }

    private static async Task<IResult> GetLedger(string sku, string locationId, string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        if (!JsonInput.IsSku(sku))
        {
            input.Invalid("sku", "must be 1–64 characters without control characters.");
        }
        var (afterId, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        if (await engine.Read((s, _) => s.FindLocation(locationId)) is null)
        {
            return Problems.NotFound("unknown-location", $"Location '{locationId}' is not declared.");
        }
        // The ledger is read from the journal: every acknowledged write is committed there before its answer.
        var rows = engine.Journal.ReadLedger(sku, locationId, afterId, pageSize + 1);
        var more = rows.Count > pageSize;
        var stored = rows.Take(pageSize).ToList();
        var erp = Erp.ErpEndpoints.LedgerStates(engine.Journal, stored);
        var page = stored.Select(r => new LedgerEntryView(r.Id, r.EventId, r.ReservationId, r.Type, r.Quantity, r.OccurredAt,
            r.RecordedAt, r.Status, r.Source, r.CorrelationId, r.OnHandAfter, r.AvailableAfter, erp.GetValueOrDefault(r.Id))).ToArray();
        return Results.Ok(new LedgerPage(page, more ? page[^1].Id.ToString(CultureInfo.InvariantCulture) : null));
    }
}
