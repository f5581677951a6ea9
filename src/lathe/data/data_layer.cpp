// The data layer: collect, map, clean, personal-data detection, deduplication, format, split, report.
