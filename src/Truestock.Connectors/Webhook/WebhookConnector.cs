using System.Text.Json;

namespace Truestock.Connectors.Webhook;

/// <summary>Placeholder until the Webhook connector is written.</summary>
public static class WebhookConnector
{
    /// <summary>Validates settings.</summary>
    public static string? Validate(JsonElement settings) => "the Webhook connector is not available in this build.";

    /// <summary>Creates the connector.</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context) =>
        throw new NotSupportedException("The Webhook connector is not available in this build.");
}
