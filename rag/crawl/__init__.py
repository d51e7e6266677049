"""The owner's website as knowledge: crawl start pages or sitemaps into a snapshot folder of pages.

`rag.crawl.crawler.crawl(urls, folder, settings)` fetches politely (robots.txt, its Crawl-delay, bounded
concurrency and size), keeps each page's main content (no menus, banners or footers) as Markdown, PDFs as
they are, and re-crawls with conditional requests. The snapshot's layout: `rag.crawl.snapshot`; the pages as
knowledge files for the ingestion: `rag.crawl.pages`. Nothing is imported here, so that the ingestion (and
the service's start) reads a snapshot without loading the crawler."""
