namespace Truestock.Server.Ingestion;

/// <summary>Shopify order and fulfillment webhooks in (placeholder until written).</summary>
internal static class ShopifyWebhookEndpoints
{
    public static void MapShopifyWebhooks(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
    }
}
