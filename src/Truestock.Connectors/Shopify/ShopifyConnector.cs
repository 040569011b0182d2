using System.Text.Json;

namespace Truestock.Connectors.Shopify;

/// <summary>Placeholder until the Shopify connector is written.</summary>
public static class ShopifyConnector
{
    /// <summary>Validates settings.</summary>
    public static string? Validate(JsonElement settings) => "the Shopify connector is not available in this build.";

    /// <summary>Creates the connector.</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context) =>
        throw new NotSupportedException("The Shopify connector is not available in this build.");
}
