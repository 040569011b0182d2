using System.Text.Json;

namespace Truestock.Connectors.Walmart;

/// <summary>Placeholder until the Walmart connector is written.</summary>
public static class WalmartConnector
{
    /// <summary>Validates settings.</summary>
    public static string? Validate(JsonElement settings) => "the Walmart connector is not available in this build.";

    /// <summary>Creates the connector.</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context) =>
        throw new NotSupportedException("The Walmart connector is not available in this build.");
}
