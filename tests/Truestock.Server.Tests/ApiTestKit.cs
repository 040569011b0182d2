using System.Net;
using System.Text;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>Small helpers shared by the HTTP API tests (Api*Tests).</summary>
internal static class Api
{
    public const string ProblemContentType = "application/problem+json";

    /// <summary>
    /// Asserts an RFC 9457 answer: the status, the problem+json content type, and type/title/status/detail;
    /// optionally that the type ends with <paramref name="typeSuffix"/>. Returns the body.
    /// </summary>
    public static async Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string? typeSuffix = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal(ProblemContentType, response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement.Clone();
        Assert.True(json.GetProperty("status").ValueKind == JsonValueKind.Number,
            $"the problem's 'status' member must be the numeric HTTP status (RFC 9457): {body}");
        Assert.Equal((int)status, json.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("title").GetString()), body);
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("detail").GetString()), body);
        var type = json.GetProperty("type").GetString();
        Assert.False(string.IsNullOrWhiteSpace(type), body);
        if (typeSuffix is not null)
        {
            Assert.EndsWith(typeSuffix, type, StringComparison.Ordinal);
        }
        return json;
    }

    /// <summary>
    /// Asserts only the status code, the problem+json content type and the problem type's ending; for tests about
    /// behaviour rather than the problem document (which <see cref="AssertProblem"/> checks in full).
    /// </summary>
    public static async Task AssertStatusAndType(HttpResponseMessage response, HttpStatusCode status, string typeSuffix)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal(ProblemContentType, response.Content.Headers.ContentType?.MediaType);
        Assert.EndsWith(typeSuffix, JsonDocument.Parse(body).RootElement.GetProperty("type").GetString(), StringComparison.Ordinal);
    }

    /// <summary>Asserts a validation problem (422 unless told) whose <c>errors</c> name <paramref name="field"/>.</summary>
    public static async Task<JsonElement> AssertFieldError(HttpResponseMessage response, string field, HttpStatusCode status = HttpStatusCode.UnprocessableEntity)
    {
        var problem = await AssertProblem(response, status);
        var keys = ErrorKeys(problem);
        Assert.True(keys.Contains(field), $"errors should name '{field}' but name [{string.Join(", ", keys)}]");
        Assert.NotEmpty(problem.GetProperty("errors").GetProperty(field).EnumerateArray());
        return problem;
    }

    public static string[] ErrorKeys(JsonElement problem) =>
        problem.TryGetProperty("errors", out var errors) ? errors.EnumerateObject().Select(p => p.Name).ToArray() : [];

    /// <summary>Asserts a successful status and returns the JSON body.</summary>
    public static async Task<JsonElement> AssertJson(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Posts events and returns the whole result objects (eventId, status, error?).</summary>
    public static async Task<JsonElement[]> PostEvents(this HubServer hub, params object[] events)
    {
        var json = await AssertJson(await hub.Post("/v1/events", new { events }), HttpStatusCode.OK);
        return json.GetProperty("results").EnumerateArray().ToArray();
    }

    public static Task<HttpResponseMessage> PutRaw(this HubServer hub, string path, string json) =>
        hub.Client.PutAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    public static Task<HttpResponseMessage> PostEmpty(this HubServer hub, string path) =>
        hub.Client.PostAsync(path, content: null);

    /// <summary>Receives stock with a fresh event id.</summary>
    public static async Task Receive(this HubServer hub, string sku, string locationId, long quantity)
    {
        var statuses = await hub.Events(HubServer.Event("received", sku, locationId, quantity));
        Assert.Equal(["applied"], statuses);
    }

    public static long Long(this JsonElement e, string name) => e.GetProperty(name).GetInt64();

    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;

    /// <summary>Sets (or replaces) a field of an event dictionary; returns it for chaining.</summary>
    public static Dictionary<string, object?> With(this Dictionary<string, object?> e, string key, object? value)
    {
        e[key] = value;
        return e;
    }

    /// <summary>Removes a field of an event dictionary; returns it for chaining.</summary>
    public static Dictionary<string, object?> Without(this Dictionary<string, object?> e, string key)
    {
        e.Remove(key);
        return e;
    }

    /// <summary>A reservation request body.</summary>
    public static Dictionary<string, object?> Reservation(string reservationId, string channelId, params object[] lines) => new()
    {
        ["reservationId"] = reservationId,
        ["channelId"] = channelId,
        ["lines"] = lines,
    };

    public static object Line(string sku, long quantity, string? locationId = null) =>
        locationId is null ? new { sku, quantity } : new { sku, quantity, locationId };

    public static Task<HttpResponseMessage> Reserve(this HubServer hub, Dictionary<string, object?> body) => hub.Post("/v1/reservations", body);

    public static Task<HttpResponseMessage> Commit(this HubServer hub, string reservationId) => hub.PostEmpty($"/v1/reservations/{reservationId}/commit");

    public static Task<HttpResponseMessage> Release(this HubServer hub, string reservationId) => hub.PostEmpty($"/v1/reservations/{reservationId}/release");

    public static async Task<string> ReservationStatus(this HubServer hub, string reservationId) =>
        (await hub.GetJson($"/v1/reservations/{reservationId}")).Str("status");

    /// <summary>onHand, damaged, inspection, allocated, reserved, incoming, safetyStock, available of a position.</summary>
    public static async Task<long[]> Quantities(this HubServer hub, string sku, string locationId)
    {
        var p = await hub.Position(sku, locationId);
        return
        [
            p.Long("onHand"), p.Long("damaged"), p.Long("inspection"), p.Long("allocated"), p.Long("reserved"),
            p.Long("incoming"), p.Long("safetyStock"), p.Long("available"),
        ];
    }

    /// <summary>Asserts onHand, damaged, inspection, allocated, reserved, incoming, safetyStock, available of a position.</summary>
    public static async Task AssertQuantities(this HubServer hub, string sku, string locationId, params long[] expected)
    {
        var actual = await hub.Quantities(sku, locationId);
        Assert.True(expected.SequenceEqual(actual),
            $"{sku}@{locationId} (onHand, damaged, inspection, allocated, reserved, incoming, safetyStock, available): expected [{string.Join(", ", expected)}] but was [{string.Join(", ", actual)}]");
    }

    public static async Task<long> OnHand(this HubServer hub, string sku, string locationId) => (await hub.Position(sku, locationId)).Long("onHand");

    public static async Task<long> Available(this HubServer hub, string sku, string locationId) => (await hub.Position(sku, locationId)).Long("available");
}
