using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Engine;

namespace Truestock.Server.Http;

/// <summary>Request body of PUT /v1/locations/{locationId}.</summary>
public sealed record LocationRequest(string Name, string Type);

/// <summary>Request body of PUT /v1/channels/{channelId}.</summary>
public sealed record ChannelRequest(string Name, IReadOnlyList<string> Locations, int? AllocationPercent, long? BufferUnits,
    long? MaxQuantity, object? Connector);

/// <summary>Request body of PUT /v1/positions/{sku}/{locationId}/safety-stock.</summary>
public sealed record SafetyStockRequest(long Quantity);

internal static class MasterDataEndpoints
{
    private const int ConnectorJsonLengthMax = 16 * 1024;

    public static void MapMasterData(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("Master data");

        group.MapPut("/locations/{locationId}", PutLocation).RequireScope(Scopes.Admin)
            .Accepts<LocationRequest>("application/json").Produces<LocationView>(200).Produces<LocationView>(201)
            .WithSummary("Declare or replace a location (201 when new).");
        group.MapGet("/locations", async (Sequencer engine) =>
                Results.Ok(await engine.Read((s, _) => s.Locations.OrderBy(l => l.Id, StringComparer.Ordinal).Select(Views.Of).ToArray())))
            .RequireScope(Scopes.AvailabilityRead).Produces<LocationView[]>().WithSummary("List locations.");
        group.MapGet("/locations/{locationId}", async (string locationId, Sequencer engine) =>
                await engine.Read((s, _) => s.FindLocation(locationId)) is { } l
                    ? Results.Ok(Views.Of(l))
                    : Problems.NotFound("unknown-location", $"Location '{locationId}' is not declared."))
            .RequireScope(Scopes.AvailabilityRead).Produces<LocationView>().WithSummary("One location.");

        group.MapPut("/channels/{channelId}", PutChannel).RequireScope(Scopes.Admin)
            .Accepts<ChannelRequest>("application/json").Produces<ChannelView>(200).Produces<ChannelView>(201)
            .WithSummary("Declare or replace a channel (201 when new).");
        group.MapGet("/channels", async (Sequencer engine) =>
                Results.Ok(await engine.Read((s, _) => s.Channels.OrderBy(c => c.Id, StringComparer.Ordinal).Select(Views.Of).ToArray())))
            .RequireScope(Scopes.AvailabilityRead).Produces<ChannelView[]>().WithSummary("List channels.");
        group.MapGet("/channels/{channelId}", async (string channelId, Sequencer engine) =>
                await engine.Read((s, _) => s.FindChannel(channelId)) is { } c
                    ? Results.Ok(Views.Of(c))
                    : Problems.NotFound("unknown-channel", $"Channel '{channelId}' is not declared."))
            .RequireScope(Scopes.AvailabilityRead).Produces<ChannelView>().WithSummary("One channel.");

        group.MapPut("/positions/{sku}/{locationId}/safety-stock", PutSafetyStock).RequireScope(Scopes.Admin)
            .Accepts<SafetyStockRequest>("application/json").Produces<PositionView>()
            .WithSummary("Set a position's safety stock (never offered to any channel).");
    }

    private static async Task<IResult> PutLocation(string locationId, HttpContext http, Sequencer engine, IOptions<HubOptions> options)
    {
        var (doc, error) = await JsonInput.ReadObject(http.Request, options.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var input = new JsonInput();
        if (!JsonInput.IsId(locationId))
        {
            input.Invalid("locationId", "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        }
        var root = doc!.RootElement;
        var name = input.String(root, "name", "name", required: true);
        var typeText = input.String(root, "type", "type", required: true, 16);
        var type = LocationType.Store;
        if (typeText is not null && !Views.TryParseLocationType(typeText, out type))
        {
            input.Invalid("type", "must be one of store, warehouse, dc, 3pl, virtual.");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var location = new Location(locationId, name!, type);
        var outcome = await engine.Submit(new Work<Location, MasterDataOutcome>(CommandKinds.PutLocation, location,
            static (s, l, _, _) => s.PutLocation(l), static o => o.Result != MasterDataResult.Rejected));
        return outcome.Result == MasterDataResult.Created
            ? Results.Created($"/v1/locations/{locationId}", Views.Of(location))
            : Results.Ok(Views.Of(location));
    }

    private static async Task<IResult> PutChannel(string channelId, HttpContext http, Sequencer engine, IOptions<HubOptions> options)
    {
        var (doc, error) = await JsonInput.ReadObject(http.Request, options.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var input = new JsonInput();
        if (!JsonInput.IsId(channelId))
        {
            input.Invalid("channelId", "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        }
        var root = doc!.RootElement;
        var name = input.String(root, "name", "name", required: true);
        var locations = new List<string>();
        if (input.Array(root, "locations", "locations", required: true, 1, Limits.ChannelLocationsMax) is { } array)
        {
            var i = 0;
            foreach (var item in array.EnumerateArray())
            {
                var path = $"locations[{i++}]";
                if (item.ValueKind != System.Text.Json.JsonValueKind.String)
                {
                    input.Malformed(path, "must be a location id string.");
                }
                else if (!JsonInput.IsId(item.GetString()!))
                {
                    input.Invalid(path, "must be a location id (1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-').");
                }
                else if (locations.Contains(item.GetString()!))
                {
                    input.Invalid(path, $"'{item.GetString()}' is listed twice.");
                }
                else
                {
                    locations.Add(item.GetString()!);
                }
            }
        }
        var percent = input.Long(root, "allocationPercent", "allocationPercent", required: false, 0, 100) ?? 100;
        var buffer = input.Long(root, "bufferUnits", "bufferUnits", required: false, 0, Limits.QuantityMax) ?? 0;
        var max = input.Long(root, "maxQuantity", "maxQuantity", required: false, 0, Limits.QuantityMax);
        string? connector = null;
        if (root.TryGetProperty("connector", out var c) && c.ValueKind != System.Text.Json.JsonValueKind.Null)
        {
            connector = c.GetRawText();
            if (connector.Length > ConnectorJsonLengthMax)
            {
                input.Invalid("connector", $"must be at most {ConnectorJsonLengthMax} characters of JSON.");
            }
            else if ((Truestock.Connectors.ConnectorFactory.Validate(c) ?? Channels.ChannelSyncSettings.Validate(c)) is { } connectorError)
            {
                input.Invalid("connector", connectorError);
            }
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var channel = new Channel(channelId, name!, locations, (int)percent, buffer, max, connector);
        var outcome = await engine.Submit(new Work<Channel, MasterDataOutcome>(CommandKinds.PutChannel, channel,
            static (s, ch, _, _) => s.PutChannel(ch), static o => o.Result != MasterDataResult.Rejected));
        return outcome.Result switch
        {
            MasterDataResult.Created => Results.Created($"/v1/channels/{channelId}", Views.Of(channel)),
            MasterDataResult.Updated => Results.Ok(Views.Of(channel)),
            _ => Problems.Unprocessable(outcome.ErrorType!, outcome.ErrorDetail!, "locations"),
        };
    }

    private static async Task<IResult> PutSafetyStock(string sku, string locationId, HttpContext http, Sequencer engine, IOptions<HubOptions> options)
    {
        var (doc, error) = await JsonInput.ReadObject(http.Request, options.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var input = new JsonInput();
        if (!JsonInput.IsSku(sku))
        {
            input.Invalid("sku", "must be 1–64 characters without control characters.");
        }
        if (!JsonInput.IsId(locationId))
        {
            input.Invalid("locationId", "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        }
        var quantity = input.Long(doc!.RootElement, "quantity", "quantity", required: true, 0, Limits.QuantityMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var change = new SafetyStockChange(sku, locationId, quantity!.Value, http.CorrelationId());
        var (outcome, view) = await engine.Submit(new Work<SafetyStockChange, (MasterDataOutcome, PositionView?)>(CommandKinds.SetSafetyStock, change,
            static (s, c, now, fx) =>
            {
                var o = s.SetSafetyStock(c.Sku, c.LocationId, c.Quantity, now, c.CorrelationId, fx);
                return (o, o.Result == MasterDataResult.Rejected ? null : Views.Of(c.LocationId, s.FindPosition(c.Sku, c.LocationId)));
            }));
        return outcome.Result != MasterDataResult.Rejected
            ? Results.Ok(view)
            : outcome.ErrorType == RejectionTypes.UnknownLocation
                ? Problems.Unprocessable(outcome.ErrorType, outcome.ErrorDetail!, "locationId")
                : Problems.Conflict(outcome.ErrorType!, "Insufficient stock.", outcome.ErrorDetail!);
    }
}
