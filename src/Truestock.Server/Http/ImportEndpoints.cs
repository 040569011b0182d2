namespace Truestock.Server.Http;

/// <summary>CSV imports of stock movements and snapshots (placeholder until written).</summary>
internal static class ImportEndpoints
{
    public static void MapImports(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
    }
}
