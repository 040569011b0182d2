using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Truestock.Connectors.Erp;

/// <summary>
/// Posts stock movements to any ERP that takes JSON over HTTP: one <c>POST</c> of a batch to the configured URL, with the
/// secret of the credential set in the configured header (default <c>X-Api-Key</c>).
/// </summary>
/// <remarks>
/// <para>
/// Body: <c>{"movements":[{"key","eventId","sku","locationId","type","quantity","onHandDelta","onHandAfter","occurredAt","source"}]}</c>.
/// Answer (2xx): <c>{"results":[{"key","status":"booked"|"duplicate"|"rejected","documentId"?,"error"?}]}</c>. The ERP must
/// book each key at most once and answer a repeated key with <c>duplicate</c> and the document it booked it in.
/// </para>
/// <para>
/// <c>booked</c> and <c>duplicate</c> are Posted; <c>rejected</c> is Permanent with the ERP's error; a key missing from
/// the results is Transient. Whole-request failures: 408, 429, 5xx, timeouts and transport errors are retried (the
/// request is idempotent by its keys) and then Transient; any other status (400, 401, 403, 404, 413, 422) is Permanent
/// for every movement, with the status and a bounded prefix of the ERP's body.
/// </para>
/// </remarks>
public sealed class RestErpConnector : IErpConnector
{
    private const string Service = "the ERP";

    private readonly ErpSettings _settings;
    private readonly ErpContext _context;
    private readonly ErpHttp _http;

    internal RestErpConnector(ErpSettings settings, ErpContext context)
    {
        _settings = settings;
        _context = context;
        _http = new ErpHttp(settings, context, Counters);
    }

    /// <inheritdoc />
    public int BatchSizeMax => _settings.EffectiveBatchSizeMax;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <inheritdoc />
    public async Task<IReadOnlyList<ErpPostOutcome>> PostAsync(IReadOnlyList<ErpMovement> movements, CancellationToken cancellationToken)
    {
        if (ErpMovements.Begin(movements, BatchSizeMax, _settings, _context, _settings.SecretName, "authenticate to the ERP", out var secret) is { } early)
        {
            return early;
        }
        var body = Body(movements);
        var answer = await _http.SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, _settings.Url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.TryAddWithoutValidation(_settings.AuthHeader, secret);
            return request;
        }, repeatable: true, Service, cancellationToken).ConfigureAwait(false);

        if (!answer.Succeeded)
        {
            return ErpMovements.All(movements, answer.IsTransient ? ErpPostStatus.Transient : ErpPostStatus.Permanent, answer.Describe(Service));
        }
        return Results(movements, answer.Body);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The exact bytes sent for a batch.</summary>
    internal static byte[] Body(IReadOnlyList<ErpMovement> movements)
    {
        var buffer = new ArrayBufferWriter<byte>(256 * movements.Count);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("movements");
            foreach (var m in movements)
            {
                writer.WriteStartObject();
                writer.WriteString("key", m.Key);
                writer.WriteString("eventId", m.EventId);
                writer.WriteString("sku", m.Sku);
                writer.WriteString("locationId", m.LocationId);
                writer.WriteString("type", m.Type);
                writer.WriteNumber("quantity", m.Quantity);
                writer.WriteNumber("onHandDelta", m.OnHandDelta);
                writer.WriteNumber("onHandAfter", m.OnHandAfter);
                writer.WriteString("occurredAt", m.OccurredAt.ToString("O", CultureInfo.InvariantCulture));
                writer.WriteString("source", m.Source);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static ErpPostOutcome[] Results(IReadOnlyList<ErpMovement> movements, string body)
    {
        var byKey = new Dictionary<string, ErpPostOutcome>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("results", out var results) && results.ValueKind == JsonValueKind.Array)
            {
                foreach (var result in results.EnumerateArray())
                {
                    if (Parse(result) is { } outcome)
                    {
                        byKey[outcome.Key] = outcome;
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Handled below: the ERP said 2xx but we cannot tell what it booked, so every movement is sent again
            // later, which its keys make harmless.
            byKey.Clear();
        }
        return movements.Select(m => byKey.TryGetValue(m.Key, out var outcome)
            ? outcome
            : new ErpPostOutcome(m.Key, ErpPostStatus.Transient, Error: "The ERP's answer has no result for this movement.")).ToArray();
    }

    private static ErpPostOutcome? Parse(JsonElement result)
    {
        if (result.ValueKind != JsonValueKind.Object
            || !result.TryGetProperty("key", out var key) || key.ValueKind != JsonValueKind.String
            || !result.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        var documentId = result.TryGetProperty("documentId", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        var error = result.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? ErpHttp.Bound(e.GetString()!) : null;
        return status.GetString() switch
        {
            "booked" or "duplicate" => new ErpPostOutcome(key.GetString()!, ErpPostStatus.Posted, documentId),
            "rejected" => new ErpPostOutcome(key.GetString()!, ErpPostStatus.Permanent, Error: error ?? "The ERP rejected the movement without a reason."),
            var other => new ErpPostOutcome(key.GetString()!, ErpPostStatus.Transient, Error: $"The ERP answered the unknown status '{other}'."),
        };
    }
}

/// <summary>Argument checks and helpers shared by the ERP connectors.</summary>
internal static class ErpMovements
{
    public static void Check(IReadOnlyList<ErpMovement> movements, int batchSizeMax)
    {
        ArgumentNullException.ThrowIfNull(movements);
        if (movements.Count > batchSizeMax)
        {
            throw new ArgumentException($"A batch holds at most {batchSizeMax} movements; got {movements.Count}.", nameof(movements));
        }
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in movements)
        {
            if (m.OnHandDelta == 0)
            {
                throw new ArgumentException($"Movement '{m.Key}' changes nothing; the hub does not post movements without an on-hand change.", nameof(movements));
            }
            if (!keys.Add(m.Key))
            {
                throw new ArgumentException($"Movement key '{m.Key}' appears twice in one batch.", nameof(movements));
            }
        }
    }

    /// <summary>
    /// What every connector does first with a batch: checks it, then looks up the secret named <paramref name="secretName"/>
    /// in the credential set. Returns the outcomes to answer at once (none for an empty batch; every movement Permanent when
    /// the secret is missing), or null with the secret to post with.
    /// </summary>
    public static IReadOnlyList<ErpPostOutcome>? Begin(IReadOnlyList<ErpMovement> movements, int batchSizeMax, ErpSettings settings,
        ErpContext context, string secretName, string purpose, out string secret)
    {
        Check(movements, batchSizeMax);
        secret = "";
        if (movements.Count == 0)
        {
            return [];
        }
        var found = context.Credential(secretName);
        if (string.IsNullOrEmpty(found))
        {
            // The message names the secret, never a value.
            return All(movements, ErpPostStatus.Permanent,
                $"The credential set '{settings.CredentialSet}' has no '{secretName}' to {purpose} with.");
        }
        secret = found;
        return null;
    }

    public static ErpPostOutcome[] All(IReadOnlyList<ErpMovement> movements, ErpPostStatus status, string error) =>
        movements.Select(m => new ErpPostOutcome(m.Key, status, Error: ErpHttp.Bound(error))).ToArray();
}
