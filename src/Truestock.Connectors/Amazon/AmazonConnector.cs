using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>Placeholder until the Amazon connector is written.</summary>
public static class AmazonConnector
{
    /// <summary>Validates settings.</summary>
    public static string? Validate(JsonElement settings) => "the Amazon connector is not available in this build.";

    /// <summary>Creates the connector.</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context) =>
        throw new NotSupportedException("The Amazon connector is not available in this build.");
}
